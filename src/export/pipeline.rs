//! The metrics pipeline: once per `[metrics] interval` it reads the
//! workers, publishes to the Prometheus recorder that `GET /metrics`
//! renders, and with `[collector]` hands the publications to the OTLP
//! exporter at the collector's own interval.
//!
//! It runs on a thread of its own (never on a worker), started by the
//! runtime ([`crate::runtime::start_api`]) together with the HTTP API,
//! which serves its Prometheus text and registers the stats stream whose
//! subscribers and drops are published too.

use super::fanout::Fanout;
use super::metrics::Publication;
use super::otlp::{OtlpConfig, OtlpExporter};
use super::publish::{self, ExporterFacts, OtlpFacts, PublishOptions, Publisher};
use super::service::ServiceThread;
use crate::runtime::clock::Clock;
use crate::runtime::RelayHandle;
use crate::stats::ClockRates;
use metrics_exporter_prometheus::{PrometheusHandle, PrometheusRecorder};
use std::io;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// `[metrics]` and `[collector]`.
#[derive(Clone, Debug, Default)]
pub struct PipelineOptions {
    /// `GET /metrics` and its publisher.
    pub metrics: PublishOptions,
    /// `[collector]`: OTLP push of the same publications.
    pub otlp: Option<OtlpConfig>,
}

impl PipelineOptions {
    /// `[metrics]` and `[collector]` of a config.
    pub fn from_config(c: &crate::config::Config) -> Self {
        PipelineOptions {
            metrics: PublishOptions {
                enabled: c.metrics.enabled,
                interval: Duration::from_secs(c.metrics.interval_secs),
                per_session: c.metrics.per_session,
                max_session_series: c.metrics.max_session_series,
            },
            otlp: c.collector.otlp_endpoint.as_ref().map(|endpoint| {
                let defaults = OtlpConfig::default();
                let mut resource = defaults.resource.clone();
                for (k, v) in &c.collector.resource {
                    resource.retain(|(rk, _)| rk != k);
                    resource.push((k.clone(), v.clone()));
                }
                OtlpConfig {
                    endpoint: endpoint.clone(),
                    interval: c
                        .collector
                        .interval_secs
                        .map_or(Duration::from_secs(10), Duration::from_secs),
                    // 5 s unless set, as documented (the exporter's own
                    // default is longer; a drain waits for one last push).
                    timeout: Duration::from_millis(c.collector.timeout_ms.unwrap_or(5000)),
                    max_retries: c.collector.max_retries.unwrap_or(defaults.max_retries),
                    resource,
                    ..defaults
                }
            }),
        }
    }
}

/// What the pipeline publishes about a stats stream (`/v1/stream`).
pub trait StreamFacts: Send + Sync {
    /// Live subscribers.
    fn subscribers(&self) -> usize;
    /// Events dropped for slow subscribers since the start.
    fn dropped(&self) -> u64;
}

impl<T: Clone + Send> StreamFacts for Fanout<T> {
    fn subscribers(&self) -> usize {
        Fanout::subscribers(self)
    }

    fn dropped(&self) -> u64 {
        Fanout::dropped(self)
    }
}

/// The stream registered with [`Pipeline::report_stream`], if any.
type StreamSlot = Arc<OnceLock<Arc<dyn StreamFacts>>>;

/// The running pipeline; dropping it stops the publisher (and the OTLP
/// exporter, after its last push).
pub struct Pipeline {
    /// `None` when `[metrics] enabled = false`.
    prometheus: Option<PrometheusHandle>,
    stream: StreamSlot,
    /// The publisher's thread; `None` when metrics are disabled.
    service: Option<ServiceThread>,
}

impl Pipeline {
    /// The Prometheus text source, `None` when metrics are disabled.
    pub fn prometheus(&self) -> Option<&PrometheusHandle> {
        self.prometheus.as_ref()
    }

    /// Publishes `stream`'s subscribers and drops from the next interval on
    /// (the first stream registered counts).
    pub fn report_stream(&self, stream: Arc<dyn StreamFacts>) {
        let _ = self.stream.set(stream);
    }

    /// Stops publishing and waits for the pipeline's thread.
    pub fn stop(mut self) {
        if let Some(service) = &mut self.service {
            service.stop();
        }
    }
}

/// Starts the publisher on a thread of its own when `[metrics]` is enabled
/// (and the OTLP exporter when `[collector]` is set too); errors of the
/// exporter's start surface here.
pub fn start(options: PipelineOptions, relay: RelayHandle, rates: ClockRates) -> io::Result<Pipeline> {
    let PipelineOptions { metrics, otlp } = options;
    let stream = StreamSlot::default();
    if !metrics.enabled {
        return Ok(Pipeline {
            prometheus: None,
            stream,
            service: None,
        });
    }
    let exporter = match otlp {
        Some(cfg) => Some((
            cfg.interval,
            OtlpExporter::start(cfg).map_err(|e| io::Error::new(e.kind(), format!("OTLP exporter: {e}")))?,
        )),
        None => None,
    };
    // Per-session gauges of ended sessions expire after three intervals.
    let (recorder, prometheus) = publish::prometheus_recorder(metrics.interval * 3);
    let publisher = Publisher::new(metrics, rates, unix_nanos(&Clock::new()));
    let run = Run {
        relay,
        stream: stream.clone(),
        prometheus: prometheus.clone(),
        publisher,
        recorder,
        exporter,
    };
    let service = ServiceThread::spawn("metrics", move |stopped| async move {
        tokio::select! {
            _ = run.publish() => {}
            _ = stopped => {}
        }
    })?;
    Ok(Pipeline {
        prometheus: Some(prometheus),
        stream,
        service: Some(service),
    })
}

fn unix_nanos(clock: &Clock) -> u64 {
    u64::try_from(clock.wall().as_nanos()).unwrap_or(u64::MAX)
}

/// What the publishing loop owns.
struct Run {
    relay: RelayHandle,
    stream: StreamSlot,
    prometheus: PrometheusHandle,
    publisher: Publisher,
    recorder: PrometheusRecorder,
    exporter: Option<(Duration, OtlpExporter)>,
}

impl Run {
    /// Reads the workers once per interval, publishes to the Prometheus
    /// recorder (and the OTLP exporter when configured).
    async fn publish(mut self) {
        let clock = Clock::new();
        let interval = self.publisher.options().interval;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut due = clock.now();
        // OTLP pushes at its own interval: histogram observations and ended
        // sessions gathered in between go with the next push.
        let mut otlp_due = clock.now();
        let mut pending = Publication::default();
        loop {
            tick.tick().await;
            let lag = clock.now().saturating_since(due).as_secs_f64();
            let workers = self.relay.stats().await;
            let sessions = self.relay.sessions().await;
            let closed = self.relay.take_closed().await;
            let stream = self.stream.get();
            let facts = ExporterFacts {
                stream_subscribers: stream.map_or(0, |s| s.subscribers() as u64),
                stream_events_dropped: stream.map_or(0, |s| s.dropped()),
                lag_secs: lag,
                otlp: self.exporter.as_ref().map(|(_, e)| {
                    let c = e.counters();
                    OtlpFacts {
                        metrics_ok: c.metrics_ok,
                        metrics_error: c.metrics_error,
                        logs_ok: c.logs_ok,
                        logs_error: c.logs_error,
                        retries: c.retries,
                        dropped: c.dropped,
                    }
                }),
            };
            let p = self
                .publisher
                .publish(unix_nanos(&clock), &workers, &sessions, &closed, facts);
            publish::apply(&self.recorder, &p);
            self.prometheus.run_upkeep();
            if let Some((every, exporter)) = &self.exporter {
                pending.observations.extend(p.observations.iter().cloned());
                pending.ended_sessions.extend(p.ended_sessions.iter().cloned());
                if clock.now() >= otlp_due {
                    let mut push = p;
                    push.observations = std::mem::take(&mut pending.observations);
                    push.ended_sessions = std::mem::take(&mut pending.ended_sessions);
                    exporter.offer(push);
                    otlp_due = clock.now() + *every;
                }
            }
            due = clock.now() + interval;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_registered_first_is_the_one_published() {
        let a: Arc<Fanout<u32>> = Arc::new(Fanout::new(1));
        let b: Arc<Fanout<u32>> = Arc::new(Fanout::new(1));
        let _sub = a.subscribe(None);
        let slot = StreamSlot::default();
        let _ = slot.set(a.clone());
        let _ = slot.set(b);
        assert_eq!(slot.get().map(|s| s.subscribers()), Some(1));
    }
}
