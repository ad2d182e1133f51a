//! Where events go. Publishing never blocks and never fails the request
//! that caused the event: a subscriber or sink that cannot keep up loses
//! events, and every lost event is counted, so that loss shows on a
//! dashboard instead of silently skewing download figures.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::{broadcast, mpsc};

use super::Event;

/// Whether a sink took an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// The sink has it.
    Accepted,
    /// The sink could not take it (its queue is full, or it stopped); the
    /// bus counts it as dropped.
    Dropped,
}

/// A consumer of events, such as a database writer. `offer` is called on
/// the request path (for a blob pull, as its body ends), so it must not
/// block or wait: it hands the event to a bounded queue (see
/// [`QueueSink`]) and says [`Offer::Dropped`] when that is full.
pub trait EventSink: Send + Sync + fmt::Debug {
    /// Takes `event`, without blocking, or says it could not.
    fn offer(&self, event: &Event) -> Offer;
}

/// A sink that is a bounded queue: events are offered with `try_send`, and
/// whoever holds the receiving end (a task writing batches to a database)
/// takes them at its own pace.
#[derive(Debug, Clone)]
pub struct QueueSink {
    queue: mpsc::Sender<Event>,
}

impl QueueSink {
    /// A queue holding up to `capacity` events (at least one), and its
    /// receiving end. Once the receiver is dropped, every offer is a drop.
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<Event>) {
        let (queue, receiver) = mpsc::channel(capacity.max(1));
        (QueueSink { queue }, receiver)
    }
}

impl EventSink for QueueSink {
    fn offer(&self, event: &Event) -> Offer {
        // Reserving first: a full queue costs no clone of the event.
        match self.queue.try_reserve() {
            Ok(slot) => {
                slot.send(event.clone());
                Offer::Accepted
            }
            Err(_) => Offer::Dropped,
        }
    }
}

/// The events of one registry: a broadcast channel that any number of
/// in-process subscribers read (the catalog's cache invalidation, tests),
/// and the [`EventSink`]s added with [`EventBus::add_sink`].
#[derive(Debug, Clone)]
pub struct EventBus {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    // A std mutex, never held across an await: it makes "is the oldest
    // event unseen?" and the send that evicts it one step, so each loss is
    // counted exactly once.
    broadcast: Mutex<broadcast::Sender<Event>>,
    /// The broadcast buffer's length (a power of two, which tokio uses).
    capacity: usize,
    sinks: RwLock<Vec<Arc<dyn EventSink>>>,
    dropped: AtomicU64,
}

impl EventBus {
    /// A bus whose subscribers may fall up to `capacity` events behind
    /// (rounded up to a power of two) before they lose the oldest.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1).next_power_of_two();
        EventBus {
            shared: Arc::new(Shared {
                broadcast: Mutex::new(broadcast::channel(capacity).0),
                capacity,
                sinks: RwLock::new(Vec::new()),
                dropped: AtomicU64::new(0),
            }),
        }
    }

    /// A new subscriber, which sees every event published from now on. One
    /// that falls more than the capacity behind gets
    /// `RecvError::Lagged`, and what it missed is counted in
    /// [`dropped`](Self::dropped).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.lock_broadcast().subscribe()
    }

    /// Adds a sink, which is offered every event published from now on.
    pub fn add_sink(&self, sink: Arc<dyn EventSink>) {
        self.shared
            .sinks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(sink);
    }

    /// Events lost since start: refused by a sink, or evicted from the
    /// broadcast buffer before some subscriber had seen them. Exported as
    /// `rbee_catalog_registry_events_dropped_total` by the catalog.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Publishes an event to every sink and subscriber; with neither, it
    /// goes nowhere (and nothing is lost).
    pub fn publish(&self, event: Event) {
        let mut lost = 0;
        for sink in self
            .shared
            .sinks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            if sink.offer(&event) == Offer::Dropped {
                lost += 1;
            }
        }
        {
            let sender = self.lock_broadcast();
            if sender.receiver_count() > 0 {
                // A full buffer means the slot this send overwrites holds an
                // event some subscriber has not read yet.
                if sender.len() >= self.shared.capacity {
                    lost += 1;
                }
                let _ = sender.send(event);
            }
        }
        if lost > 0 {
            self.count_dropped(lost);
        }
    }

    fn lock_broadcast(&self) -> std::sync::MutexGuard<'_, broadcast::Sender<Event>> {
        self.shared
            .broadcast
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Counts lost events, and says so in the log at the first loss and
    /// each time the total doubles: visible on a registry without metrics,
    /// yet no flood while a sink stays behind.
    fn count_dropped(&self, n: u64) {
        let before = self.shared.dropped.fetch_add(n, Ordering::Relaxed);
        let after = before + n;
        if (before + 1).next_power_of_two() <= after {
            tracing::warn!(
                dropped_total = after,
                "registry events were dropped: a subscriber or sink cannot keep up"
            );
        }
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Action, RequestContext, Target};
    use crate::reference::{Digest, RepoName};

    fn event(n: u8) -> Event {
        let digest = Digest::parse(&format!("sha256:{}", hex::encode([n; 32]))).unwrap();
        Event::new(
            Action::Push,
            Target::Blob,
            &RepoName::parse("rbee/w").unwrap(),
            &digest,
            &RequestContext::default(),
        )
    }

    #[test]
    fn a_lagging_subscriber_is_counted_for_every_event_it_lost() {
        let bus = EventBus::new(4);
        let mut slow = bus.subscribe();
        for n in 0..4 {
            bus.publish(event(n));
        }
        assert_eq!(bus.dropped(), 0, "the buffer holds four");
        for n in 4..7 {
            bus.publish(event(n));
        }
        assert_eq!(bus.dropped(), 3);
        assert!(matches!(
            slow.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(3))
        ));
        // Caught up: nothing more is lost.
        while slow.try_recv().is_ok() {}
        bus.publish(event(7));
        assert_eq!(bus.dropped(), 3);
    }

    #[test]
    fn without_subscribers_or_sinks_nothing_is_lost() {
        let bus = EventBus::new(1);
        for n in 0..10 {
            bus.publish(event(n));
        }
        assert_eq!(bus.dropped(), 0);
    }

    #[test]
    fn a_full_queue_sink_counts_drops_and_a_drained_one_takes_events_again() {
        let bus = EventBus::new(4);
        let (sink, mut queue) = QueueSink::new(2);
        bus.add_sink(Arc::new(sink));
        for n in 0..5 {
            bus.publish(event(n));
        }
        assert_eq!(bus.dropped(), 3);
        assert_eq!(queue.try_recv().unwrap().digest, event(0).digest);
        while queue.try_recv().is_ok() {}
        bus.publish(event(9));
        assert_eq!(bus.dropped(), 3);
        assert_eq!(queue.try_recv().unwrap().digest, event(9).digest);
        drop(queue);
        bus.publish(event(10));
        assert_eq!(bus.dropped(), 4, "a closed queue drops too");
    }
}
