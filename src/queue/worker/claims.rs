//! The worker's table of claimed entries whose result is not in Redis yet,
//! by [`Ticket`]: the source adds to it, the sink takes from it, shutdown
//! releases what is left.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::event::Ticket;
use crate::queue::QueueEntry;

/// Claimed entries not yet recorded, in claim order. Shared with the
/// source, which submits them, and the sink, which records them: one
/// entry's eight strings are not copied twice per download.
#[derive(Debug, Default)]
pub(super) struct Claims {
    next: u64,
    entries: BTreeMap<Ticket, Arc<QueueEntry>>,
}

impl Claims {
    /// Holds a claimed entry; its ticket is its claim number, so tickets
    /// order entries by claim.
    pub(super) fn add(&mut self, entry: QueueEntry) -> Ticket {
        let ticket = Ticket(self.next);
        self.next += 1;
        self.entries.insert(ticket.clone(), Arc::new(entry));
        ticket
    }

    /// The entry `ticket` stands for, unless its result was recorded.
    pub(super) fn get(&self, ticket: &Ticket) -> Option<&Arc<QueueEntry>> {
        self.entries.get(ticket)
    }

    /// Forgets `ticket`: its result is in Redis (or given up on).
    pub(super) fn remove(&mut self, ticket: &Ticket) {
        self.entries.remove(ticket);
    }

    /// Whether no entry of this worker is in flight.
    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Empties the table, newest claim first: releasing in this order puts
    /// the oldest claim back at the head of `pending`, so its head is in
    /// claim order again.
    pub(super) fn take_newest_first(&mut self) -> Vec<Arc<QueueEntry>> {
        std::mem::take(&mut self.entries).into_values().rev().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u64) -> QueueEntry {
        QueueEntry::new(format!("https://e.test/{i}"), None, None, "urls.txt", i)
    }

    #[test]
    fn tickets_count_claims_and_find_what_is_held() {
        let mut claims = Claims::default();
        assert!(claims.is_empty());
        let tickets: Vec<Ticket> = (0..3).map(|i| claims.add(entry(i))).collect();
        assert_eq!(tickets, [Ticket(0), Ticket(1), Ticket(2)]);
        assert_eq!(claims.get(&Ticket(1)).map(|e| &**e), Some(&entry(1)));
        claims.remove(&Ticket(1));
        assert_eq!(claims.get(&Ticket(1)), None);
        // A ticket is never handed out twice, even after its entry left.
        assert_eq!(claims.add(entry(1)), Ticket(3));
        assert!(!claims.is_empty());
    }

    #[test]
    fn leftovers_come_back_newest_first() {
        let mut claims = Claims::default();
        for i in 0..4 {
            claims.add(entry(i));
        }
        claims.remove(&Ticket(2));
        assert_eq!(
            claims.take_newest_first(),
            [entry(3), entry(1), entry(0)].map(Arc::new)
        );
        assert!(claims.is_empty());
        assert_eq!(claims.take_newest_first(), Vec::<Arc<QueueEntry>>::new());
    }
}
