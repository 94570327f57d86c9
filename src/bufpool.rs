//! Fixed-size byte buffers leased to connections while they have bytes in flight.
//!
//! An idle keep-alive connection holds no buffer: it leases one when bytes arrive
//! and gives it back when it goes idle again. Returned buffers are kept on a free
//! list up to a cap, so a busy server allocates nothing per request and a quiet
//! one gives the memory back.

/// A pool of equally sized buffers.
#[derive(Debug)]
pub(crate) struct BufPool {
    size: usize,
    max_free: usize,
    free: Vec<Vec<u8>>,
}

impl BufPool {
    /// Buffers of `size` bytes; at most `max_free` are kept for reuse.
    pub(crate) fn new(size: usize, max_free: usize) -> BufPool {
        BufPool { size, max_free, free: Vec::new() }
    }

    /// A buffer with capacity for [`size`](BufPool::size) bytes. A new buffer is
    /// zero-filled to its full length; a reused one keeps the length it was given
    /// back with (callers that append `clear()` it, callers that read into it don't).
    pub(crate) fn take(&mut self) -> Vec<u8> {
        self.free.pop().unwrap_or_else(|| vec![0; self.size])
    }

    /// Returns `buf` to the pool (or frees it when the pool is full or `buf` grew).
    pub(crate) fn give(&mut self, buf: Vec<u8>) {
        if self.free.len() < self.max_free && buf.capacity() == self.size {
            self.free.push(buf);
        }
    }

    /// Frees all but `keep` spare buffers.
    pub(crate) fn trim(&mut self, keep: usize) {
        self.free.truncate(keep);
        self.free.shrink_to(keep);
    }

    /// How many spare buffers are held.
    #[cfg(test)]
    pub(crate) fn spare(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_buffers_up_to_the_cap() {
        let mut pool = BufPool::new(64, 1);
        let a = pool.take();
        let b = pool.take();
        assert_eq!((a.len(), a.capacity()), (64, 64));
        let a_ptr = a.as_ptr();
        pool.give(a);
        pool.give(b);
        assert_eq!(pool.spare(), 1);
        let again = pool.take();
        assert_eq!(again.as_ptr(), a_ptr);
        pool.give(Vec::with_capacity(10));
        assert_eq!(pool.spare(), 0, "foreign-sized buffers are not pooled");
    }
}
