//! Fan-out of stream events to subscribers, each with its own bounded
//! queue that drops its oldest event when full (and counts it), so a slow
//! or stuck subscriber never slows the producer, the relay or the others.
//!
//! Why not `tokio::sync::broadcast`: its lag is only discovered when the
//! lagging receiver polls again, and a subscriber whose connection is stuck
//! never polls, so its losses would go uncounted. Here the producer sees
//! every overflow as it happens.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::Notify;

struct Queue<T> {
    items: Mutex<VecDeque<T>>,
    notify: Notify,
    /// Only items for this key (`?session=`), or all.
    only: Option<String>,
}

/// The producer's side.
pub struct Fanout<T> {
    subscribers: Mutex<Vec<Weak<Queue<T>>>>,
    capacity: usize,
    dropped: AtomicU64,
}

/// A subscriber's side; dropping it unsubscribes.
pub struct Subscription<T> {
    queue: Arc<Queue<T>>,
}

impl<T: Clone> Fanout<T> {
    pub fn new(capacity: usize) -> Self {
        Fanout {
            subscribers: Mutex::new(Vec::new()),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
        }
    }

    pub fn subscribe(&self, only: Option<String>) -> Subscription<T> {
        let queue = Arc::new(Queue {
            items: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
            only,
        });
        if let Ok(mut subs) = self.subscribers.lock() {
            subs.push(Arc::downgrade(&queue));
        }
        Subscription { queue }
    }

    /// Queues `item` (about `key`) for every interested subscriber.
    pub fn send(&self, key: &str, item: &T) {
        let Ok(mut subs) = self.subscribers.lock() else { return };
        subs.retain(|w| w.strong_count() > 0);
        for q in subs.iter().filter_map(Weak::upgrade) {
            if q.only.as_deref().is_some_and(|k| k != key) {
                continue;
            }
            if let Ok(mut items) = q.items.lock() {
                if items.len() >= self.capacity {
                    items.pop_front();
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
                items.push_back(item.clone());
            }
            q.notify.notify_one();
        }
    }

    /// Live subscribers.
    pub fn subscribers(&self) -> usize {
        self.subscribers
            .lock()
            .map_or(0, |s| s.iter().filter(|w| w.strong_count() > 0).count())
    }

    /// Events dropped from full subscriber queues since the start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl<T> Subscription<T> {
    /// The next event, waiting for one.
    pub async fn recv(&self) -> T {
        loop {
            if let Some(item) = self.queue.items.lock().ok().and_then(|mut q| q.pop_front()) {
                return item;
            }
            // notify_one stores a permit when nobody waits, so an item
            // pushed between the check above and this await is not missed.
            self.queue.notify.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn full_queues_drop_their_oldest_and_count() {
        let f: Fanout<u32> = Fanout::new(2);
        let all = f.subscribe(None);
        let only_b = f.subscribe(Some("b".into()));
        for (i, key) in ["a", "b", "a", "b"].iter().enumerate() {
            f.send(key, &(i as u32));
        }
        // `all` kept the newest two of four; `only_b` got both of its own.
        assert_eq!(f.dropped(), 2);
        assert_eq!(all.recv().await, 2);
        assert_eq!(all.recv().await, 3);
        assert_eq!(only_b.recv().await, 1);
        assert_eq!(only_b.recv().await, 3);
        assert_eq!(f.subscribers(), 2);
        drop(all);
        assert_eq!(f.subscribers(), 1);
    }
}
