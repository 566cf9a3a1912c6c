// A raw /v1/stream reader for tests: collects every event (parsed JSON data)
// so tests can look at what the proxy itself sent.
import { SseParser } from '../../index.js';

export function recordStream(url, { token } = {}) {
  const ac = new AbortController();
  const events = [];
  const done = (async () => {
    try {
      const res = await fetch(url, {
        headers: { Accept: 'text/event-stream', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
        signal: ac.signal,
      });
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      const parser = new SseParser();
      for (;;) {
        const { value, done: end } = await reader.read();
        if (end) break;
        for (const ev of parser.push(decoder.decode(value, { stream: true }))) {
          let data;
          try {
            data = JSON.parse(ev.data);
          } catch {
            data = ev.data;
          }
          events.push({ event: ev.event, data, at: Date.now() });
        }
      }
    } catch (e) {
      // The proxy going away (test teardown kills it) ends the recording;
      // a test that cares looks at `error`.
      if (e.name !== 'AbortError') recorder.error = e;
    }
  })();
  const recorder = {
    error: null,
    events,
    async stop() {
      ac.abort();
      await done.catch(() => {});
    },
  };
  return recorder;
}
