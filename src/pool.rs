//! A bounded free list of reusable objects (boxed per-exchange state and the
//! buffers inside it), so a busy server allocates nothing per request and a
//! quiet one gives the memory back.

/// Spare objects of one kind, at most `max_free` of them.
#[derive(Debug)]
pub(crate) struct Pool<T> {
    max_free: usize,
    free: Vec<T>,
}

impl<T> Pool<T> {
    /// An empty pool that keeps at most `max_free` spares.
    pub(crate) fn new(max_free: usize) -> Pool<T> {
        Pool { max_free, free: Vec::new() }
    }

    /// A spare object, or a new one from `make`.
    pub(crate) fn take(&mut self, make: impl FnOnce() -> T) -> T {
        self.free.pop().unwrap_or_else(make)
    }

    /// Keeps `item` for reuse, or drops it when the pool is full.
    pub(crate) fn give(&mut self, item: T) {
        if self.free.len() < self.max_free {
            self.free.push(item);
        }
    }

    /// Drops all but `keep` spares.
    pub(crate) fn trim(&mut self, keep: usize) {
        self.free.truncate(keep);
        self.free.shrink_to(keep);
    }

    /// How many spares are held.
    #[cfg(test)]
    pub(crate) fn spare(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_up_to_the_cap_and_trims() {
        let mut pool: Pool<Box<u32>> = Pool::new(2);
        let a = pool.take(|| Box::new(1));
        let a_ptr: *const u32 = &*a;
        pool.give(a);
        let again = pool.take(|| Box::new(2));
        assert_eq!(&*again as *const u32, a_ptr, "the spare is reused");
        assert_eq!(*again, 1);
        for i in 0..3 {
            pool.give(Box::new(i));
        }
        assert_eq!(pool.spare(), 2, "capped");
        pool.trim(1);
        assert_eq!(pool.spare(), 1);
    }
}
