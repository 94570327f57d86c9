//! Deadlines without scans: one intrusive FIFO list per fixed timeout duration.
//!
//! Every deadline of a given kind is `now + duration(kind)`, and `now` never goes
//! backwards, so appending at the tail keeps each list sorted by deadline. Arming,
//! re-arming and cancelling are O(1) unlinks and appends; expiring pops from the
//! head; the next wakeup is the minimum over the list heads. The lists are threaded
//! through the connection slab (each connection carries a [`Link`]), so a
//! connection is in at most one list and the lists cost no memory of their own.
//!
//! The idle list doubles as the "oldest idle keep-alive connection" queue.

use std::time::{Duration, Instant};

use slab::Slab;

/// Milliseconds since the server's [`Clock`] epoch.
pub(crate) type Millis = u64;

const NIL: u32 = u32::MAX;

/// The monotonic clock of one server, read once per wakeup.
#[derive(Debug)]
pub(crate) struct Clock {
    epoch: Instant,
    now: Millis,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock { epoch: Instant::now(), now: 0 }
    }

    /// The current time without recording it.
    pub(crate) fn peek(&self) -> Millis {
        duration_ms(self.epoch.elapsed())
    }

    /// Reads the monotonic clock and returns the new `now`.
    pub(crate) fn tick(&mut self) -> Millis {
        self.now = duration_ms(self.epoch.elapsed());
        self.now
    }
}

/// Whether something last done at `*last` (a warning, logged at most once a
/// second) may be done again at `now`; if so, `now` becomes the last time.
pub(crate) fn once_a_second(last: &mut Option<Millis>, now: Millis) -> bool {
    let due = last.is_none_or(|t| now >= t.saturating_add(1000));
    if due {
        *last = Some(now);
    }
    due
}

/// Whole milliseconds of `d`, saturating.
pub(crate) fn duration_ms(d: Duration) -> Millis {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What a connection is waiting for; each kind has its own fixed duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum TimerKind {
    /// The whole request head must arrive before this (absolute per request).
    Header = 0,
    /// A keep-alive connection waiting for its next request.
    Idle = 1,
    /// The client stopped reading our response.
    Send = 2,
    /// Closing: write side shut, waiting for the client's EOF.
    Linger = 3,
    /// A window in which a request body must make a minimum of progress.
    Body = 4,
    /// Not in any list.
    None = 5,
}

const KINDS: usize = 5;

/// A connection's place in one timer list. Embedded in each connection.
#[derive(Debug)]
pub(crate) struct Link {
    prev: u32,
    next: u32,
    at: Millis,
    linked: TimerKind,
}

impl Default for Link {
    fn default() -> Link {
        Link { prev: NIL, next: NIL, at: 0, linked: TimerKind::None }
    }
}

impl Link {
    /// The list this connection is in, and its deadline there.
    pub(crate) fn armed(&self) -> (TimerKind, Millis) {
        (self.linked, self.at)
    }
}

/// How much later a re-armed deadline must be than the standing one to be moved:
/// an eighth of the duration, at most 300 ms.
fn lazy_delay(duration: Millis) -> Millis {
    (duration / 8).min(300)
}

/// Anything stored in the slab that carries a timer [`Link`].
pub(crate) trait Linked {
    fn link(&self) -> &Link;
    fn link_mut(&mut self) -> &mut Link;
}

#[derive(Clone, Copy, Debug)]
struct List {
    head: u32,
    tail: u32,
}

/// The per-kind deadline lists of one server.
#[derive(Debug)]
pub(crate) struct Timers {
    lists: [List; KINDS],
    durations: [Millis; KINDS],
}

impl Timers {
    /// `durations` is indexed by [`TimerKind`] (header, idle, send, linger, body).
    pub(crate) fn new(durations: [Duration; KINDS]) -> Timers {
        Timers {
            lists: [List { head: NIL, tail: NIL }; KINDS],
            // At least 1 ms, so that a deadline armed while expiring others is in the future.
            durations: durations.map(|d| duration_ms(d).max(1)),
        }
    }

    /// Moves `key` to the tail of `kind`'s list with deadline `now + duration(kind)`,
    /// unlinking it from whatever list it was in. `TimerKind::None` just unlinks.
    ///
    /// Lazily for the idle and send timeouts, which every request or write moves
    /// on: when `key` is in that list already and the new deadline would be less
    /// than [`lazy_delay`] later, it stays where it is (nginx does the same with
    /// 300 ms). So such a deadline comes at most that much early, and a keep-alive
    /// connection's next request mostly touches no other connection's link. The
    /// header, body and linger timeouts, which bound one request or window, are
    /// always set anew.
    pub(crate) fn arm<T: Linked>(&mut self, slab: &mut Slab<T>, key: usize, kind: TimerKind, now: Millis) {
        if kind == TimerKind::None {
            return self.unlink(slab, key);
        }
        let k = kind as usize;
        let at = now.saturating_add(self.durations[k]);
        let lazy = matches!(kind, TimerKind::Idle | TimerKind::Send);
        if lazy
            && slab.get(key).is_some_and(|e| {
                let link = e.link();
                link.linked == kind && at.saturating_sub(link.at) < lazy_delay(self.durations[k])
            })
        {
            return;
        }
        self.unlink(slab, key);
        let tail = self.lists[k].tail;
        let Some(entry) = slab.get_mut(key) else { return };
        *entry.link_mut() = Link { prev: tail, next: NIL, at, linked: kind };
        let key32 = key as u32;
        match slab.get_mut(tail as usize) {
            Some(prev) if tail != NIL => prev.link_mut().next = key32,
            _ => self.lists[k].head = key32,
        }
        self.lists[k].tail = key32;
    }

    /// Removes `key` from its list, if any. Must be called before the slab entry is removed.
    pub(crate) fn unlink<T: Linked>(&mut self, slab: &mut Slab<T>, key: usize) {
        let Some(entry) = slab.get_mut(key) else { return };
        let link = entry.link_mut();
        if link.linked == TimerKind::None {
            return;
        }
        let (prev, next, k) = (link.prev, link.next, link.linked as usize);
        *link = Link::default();
        match slab.get_mut(prev as usize) {
            Some(p) if prev != NIL => p.link_mut().next = next,
            _ => self.lists[k].head = next,
        }
        match slab.get_mut(next as usize) {
            Some(n) if next != NIL => n.link_mut().prev = prev,
            _ => self.lists[k].tail = prev,
        }
    }

    /// The earliest deadline over all lists.
    pub(crate) fn next_deadline<T: Linked>(&self, slab: &Slab<T>) -> Option<Millis> {
        self.lists.iter().filter_map(|l| slab.get(l.head as usize).map(|e| e.link().at)).min()
    }

    /// Unlinks and returns one connection whose deadline of `kind` is at or before `now`.
    pub(crate) fn pop_expired<T: Linked>(&mut self, slab: &mut Slab<T>, kind: TimerKind, now: Millis) -> Option<usize> {
        let head = self.lists.get(kind as usize)?.head as usize;
        let at = slab.get(head)?.link().at;
        if at > now {
            return None;
        }
        self.unlink(slab, head);
        Some(head)
    }

    /// The connection that has been in `kind`'s list the longest, left in place.
    pub(crate) fn oldest(&self, kind: TimerKind) -> Option<usize> {
        let head = self.lists.get(kind as usize)?.head;
        (head != NIL).then_some(head as usize)
    }

    /// The connections in `kind`'s list, the longest there first.
    pub(crate) fn in_order<'s, T: Linked>(
        &self,
        slab: &'s Slab<T>,
        kind: TimerKind,
    ) -> impl Iterator<Item = (usize, &'s T)> + 's {
        let mut next = self.lists.get(kind as usize).map_or(NIL, |l| l.head);
        std::iter::from_fn(move || {
            let key = next;
            let entry = slab.get(key as usize).filter(|_| key != NIL)?;
            next = entry.link().next;
            Some((key as usize, entry))
        })
    }

    /// The kinds that have lists, in the order expiries are handled.
    pub(crate) const ALL: [TimerKind; KINDS] =
        [TimerKind::Header, TimerKind::Idle, TimerKind::Send, TimerKind::Linger, TimerKind::Body];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Item(Link);
    impl Linked for Item {
        fn link(&self) -> &Link {
            &self.0
        }
        fn link_mut(&mut self) -> &mut Link {
            &mut self.0
        }
    }

    fn timers() -> Timers {
        let s = Duration::from_secs(1);
        Timers::new([s * 10, s * 5, s * 30, s * 2, s * 10])
    }

    #[test]
    fn expires_in_deadline_order_and_skips_unlinked() {
        let mut slab: Slab<Item> = Slab::new();
        let mut t = timers();
        let keys: Vec<usize> = (0..4).map(|_| slab.insert(Item::default())).collect();
        for (i, &k) in keys.iter().enumerate() {
            t.arm(&mut slab, k, TimerKind::Idle, i as u64 * 100);
        }
        t.unlink(&mut slab, keys[1]);
        assert_eq!(t.next_deadline(&slab), Some(5000));
        assert_eq!(t.pop_expired(&mut slab, TimerKind::Idle, 4999), None);
        assert_eq!(t.pop_expired(&mut slab, TimerKind::Idle, 5200), Some(keys[0]));
        assert_eq!(t.pop_expired(&mut slab, TimerKind::Idle, 5200), Some(keys[2]));
        assert_eq!(t.pop_expired(&mut slab, TimerKind::Idle, 5200), None);
        assert_eq!(t.oldest(TimerKind::Idle), Some(keys[3]));
        assert_eq!(t.pop_expired(&mut slab, TimerKind::Idle, 9999), Some(keys[3]));
        assert_eq!(t.next_deadline(&slab), None);
    }

    #[test]
    fn rearming_in_the_same_list_moves_only_past_the_lazy_delay() {
        let mut slab: Slab<Item> = Slab::new();
        let mut t = timers();
        let a = slab.insert(Item::default());
        let b = slab.insert(Item::default());
        t.arm(&mut slab, a, TimerKind::Idle, 0);
        t.arm(&mut slab, b, TimerKind::Idle, 100);
        // 299 ms later: the standing deadline is kept, and `a` stays first.
        t.arm(&mut slab, a, TimerKind::Idle, 299);
        assert_eq!(slab[a].0.armed(), (TimerKind::Idle, 5_000));
        assert_eq!(t.oldest(TimerKind::Idle), Some(a));
        // 300 ms later: moved behind `b`.
        t.arm(&mut slab, a, TimerKind::Idle, 300);
        assert_eq!(slab[a].0.armed(), (TimerKind::Idle, 5_300));
        assert_eq!(t.oldest(TimerKind::Idle), Some(b));
        assert_eq!(t.pop_expired(&mut slab, TimerKind::Idle, 5_100), Some(b));
        assert_eq!(t.pop_expired(&mut slab, TimerKind::Idle, 5_100), None);
        // A short duration's delay is an eighth of it: 10 s -> 300 ms cap, 80 ms -> 10 ms.
        let mut slab: Slab<Item> = Slab::new();
        let c = slab.insert(Item::default());
        let mut short = Timers::new([Duration::from_millis(80); KINDS]);
        short.arm(&mut slab, c, TimerKind::Send, 1_000);
        short.arm(&mut slab, c, TimerKind::Send, 1_009);
        assert_eq!(slab[c].0.armed(), (TimerKind::Send, 1_080));
        short.arm(&mut slab, c, TimerKind::Send, 1_010);
        assert_eq!(slab[c].0.armed(), (TimerKind::Send, 1_090));
        // The per-request timeouts are never lazy.
        for kind in [TimerKind::Header, TimerKind::Body, TimerKind::Linger] {
            short.arm(&mut slab, c, kind, 2_000);
            short.arm(&mut slab, c, kind, 2_001);
            assert_eq!(slab[c].0.armed(), (kind, 2_081), "{kind:?}");
        }
    }

    #[test]
    fn rearming_moves_to_the_tail_of_the_new_list() {
        let mut slab: Slab<Item> = Slab::new();
        let mut t = timers();
        let a = slab.insert(Item::default());
        let b = slab.insert(Item::default());
        t.arm(&mut slab, a, TimerKind::Header, 0);
        t.arm(&mut slab, b, TimerKind::Header, 10);
        t.arm(&mut slab, a, TimerKind::Send, 20);
        assert_eq!(slab[a].0.armed(), (TimerKind::Send, 30_020));
        assert_eq!(t.oldest(TimerKind::Header), Some(b));
        assert_eq!(t.next_deadline(&slab), Some(10_010));
        t.arm(&mut slab, b, TimerKind::None, 30);
        assert_eq!(t.oldest(TimerKind::Header), None);
        assert_eq!(t.next_deadline(&slab), Some(30_020));
    }
}
