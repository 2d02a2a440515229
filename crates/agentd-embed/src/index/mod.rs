//! [`VectorIndex`]: an exact in-memory index of unit vectors by `u64` id, searched by cosine;
//! [`SharedVectorIndex`] is the same behind a read-write lock.
//!
//! Exact (a full scan per query) rather than approximate: at the sizes one database column holds
//! (10⁵ rows) a tuned scan answers in milliseconds, has perfect recall, needs no build step and
//! no tuning, and supports any filter. Vectors live in one contiguous arena (row `slot` at
//! `slot * dims`); removal moves the last row into the hole, so the arena never has gaps.

mod dot;
mod top_k;

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::IndexError;
use crate::embedder::normalize;
use top_k::TopK;

/// A filter on ids: a row is a candidate only when it returns `true`. `Sync` because a large
/// index is scanned by several threads at once.
pub type IdFilter<'a> = &'a (dyn Fn(u64) -> bool + Sync);

/// Below this many floats (about 5,000 rows of 384) a search scans on the calling thread alone:
/// starting threads would cost more than it saves.
const PARALLEL_MIN_FLOATS: usize = 1 << 21;

/// An exact index of unit vectors of one length, each under a `u64` id.
#[derive(Clone)]
pub struct VectorIndex {
    dims: usize,
    /// Row `slot` is `vectors[slot * dims..(slot + 1) * dims]`.
    vectors: Vec<f32>,
    /// The id of each row.
    ids: Vec<u64>,
    /// Each id's row.
    slots: HashMap<u64, usize>,
}

impl std::fmt::Debug for VectorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorIndex").field("dims", &self.dims).field("len", &self.len()).finish()
    }
}

impl VectorIndex {
    /// An empty index of `dims`-long vectors.
    pub fn new(dims: usize) -> Self {
        VectorIndex::with_capacity(dims, 0)
    }

    /// An empty index with room for `rows` vectors before it reallocates.
    pub fn with_capacity(dims: usize, rows: usize) -> Self {
        VectorIndex {
            dims,
            vectors: Vec::with_capacity(rows * dims),
            ids: Vec::with_capacity(rows),
            slots: HashMap::with_capacity(rows),
        }
    }

    /// The length of every vector in the index.
    pub fn dimensions(&self) -> usize {
        self.dims
    }

    /// How many vectors the index holds.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the index holds no vector.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Whether `id` has a vector.
    pub fn contains(&self, id: u64) -> bool {
        self.slots.contains_key(&id)
    }

    /// The (unit) vector stored under `id`.
    pub fn get(&self, id: u64) -> Option<&[f32]> {
        self.slots.get(&id).map(|&slot| self.row(slot))
    }

    /// Stores `vector` under `id`, replacing the one it had; `vector` is scaled to unit length
    /// (so any vector of the right length and direction will do). Returns whether `id` was new.
    pub fn insert(&mut self, id: u64, vector: &[f32]) -> Result<bool, IndexError> {
        let unit = self.unit(vector)?;
        match self.slots.get(&id) {
            Some(&slot) => {
                let dims = self.dims;
                self.vectors[slot * dims..(slot + 1) * dims].copy_from_slice(&unit);
                Ok(false)
            }
            None => {
                self.slots.insert(id, self.ids.len());
                self.ids.push(id);
                self.vectors.extend_from_slice(&unit);
                Ok(true)
            }
        }
    }

    /// Removes `id`'s vector; `false` when it had none. The last row moves into its place.
    pub fn remove(&mut self, id: u64) -> bool {
        let Some(slot) = self.slots.remove(&id) else { return false };
        let last = self.ids.len() - 1;
        if slot != last {
            let dims = self.dims;
            self.vectors.copy_within(last * dims..(last + 1) * dims, slot * dims);
            let moved = self.ids[last];
            self.ids[slot] = moved;
            self.slots.insert(moved, slot);
        }
        self.ids.truncate(last);
        self.vectors.truncate(last * self.dims);
        true
    }

    /// Removes every vector, keeping the memory for new ones.
    pub fn clear(&mut self) {
        self.vectors.clear();
        self.ids.clear();
        self.slots.clear();
    }

    /// The `k` ids whose vectors are closest to `query` by cosine similarity, best first, with
    /// their similarity (in −1..=1; ties go to the smaller id). Only ids `filter` accepts are
    /// candidates. `query` need not be unit length.
    ///
    /// This is a full scan (about 0.05 ms per 1,000 rows of 384 dimensions on one core), split
    /// across the machine's cores when the index is large: from async code, call it on a
    /// blocking thread when the index holds more than a few thousand rows.
    pub fn search(&self, query: &[f32], k: usize, filter: Option<IdFilter<'_>>) -> Result<Vec<(u64, f32)>, IndexError> {
        let query = self.unit(query)?;
        if k == 0 || self.is_empty() {
            return Ok(Vec::new());
        }
        let threads = self.threads_for_scan();
        if threads <= 1 {
            return Ok(self.scan(0..self.len(), &query, k, filter).into_sorted());
        }
        let per_thread = self.len().div_ceil(threads);
        let ranges: Vec<_> = (0..threads).map(|t| t * per_thread..((t + 1) * per_thread).min(self.len())).collect();
        let query = &query;
        let best = std::thread::scope(|scope| {
            let others: Vec<_> = ranges[1..]
                .iter()
                .cloned()
                .map(|range| scope.spawn(move || self.scan(range, query, k, filter)))
                .collect();
            let mut best = self.scan(ranges[0].clone(), query, k, filter);
            for other in others {
                match other.join() {
                    Ok(top) => best.merge(top),
                    // A panicking filter is the caller's bug: let it surface as theirs.
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            best
        });
        Ok(best.into_sorted())
    }

    fn scan(&self, slots: std::ops::Range<usize>, query: &[f32], k: usize, filter: Option<IdFilter<'_>>) -> TopK {
        let mut top = TopK::new(k);
        let ids = &self.ids[slots.clone()];
        let rows = &self.vectors[slots.start * self.dims..slots.end * self.dims];
        match filter {
            None => dot::scan(rows, query, None, &mut |row, score| top.offer(ids[row], score)),
            Some(accepts) => dot::scan(rows, query, Some(&|row| accepts(ids[row])), &mut |row, score| top.offer(ids[row], score)),
        }
        top
    }

    fn threads_for_scan(&self) -> usize {
        static CORES: OnceLock<usize> = OnceLock::new();
        let cores = *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let floats = self.vectors.len();
        if floats < PARALLEL_MIN_FLOATS { 1 } else { cores.min(floats / (PARALLEL_MIN_FLOATS / 2)).max(1) }
    }

    fn row(&self, slot: usize) -> &[f32] {
        &self.vectors[slot * self.dims..(slot + 1) * self.dims]
    }

    fn unit(&self, vector: &[f32]) -> Result<Vec<f32>, IndexError> {
        if vector.len() != self.dims {
            return Err(IndexError::Dimensions { expected: self.dims, got: vector.len() });
        }
        if vector.iter().any(|x| !x.is_finite()) {
            return Err(IndexError::NotFinite);
        }
        let mut unit = vector.to_vec();
        if !normalize(&mut unit) {
            return Err(IndexError::Zero);
        }
        Ok(unit)
    }
}

/// A [`VectorIndex`] that many threads share: searches run side by side, a change waits for
/// them (a `std::sync::RwLock`; a panic while holding it does not leave it unusable, as no
/// change can be left half done).
#[derive(Debug)]
pub struct SharedVectorIndex {
    inner: RwLock<VectorIndex>,
}

impl SharedVectorIndex {
    /// An empty shared index of `dims`-long vectors.
    pub fn new(dims: usize) -> Self {
        SharedVectorIndex::from(VectorIndex::new(dims))
    }

    /// See [`VectorIndex::insert`].
    pub fn insert(&self, id: u64, vector: &[f32]) -> Result<bool, IndexError> {
        self.write().insert(id, vector)
    }

    /// See [`VectorIndex::remove`].
    pub fn remove(&self, id: u64) -> bool {
        self.write().remove(id)
    }

    /// See [`VectorIndex::search`].
    pub fn search(&self, query: &[f32], k: usize, filter: Option<IdFilter<'_>>) -> Result<Vec<(u64, f32)>, IndexError> {
        self.read().search(query, k, filter)
    }

    /// How many vectors the index holds.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether the index holds no vector.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// The index itself, for several reads under one lock.
    pub fn read(&self) -> RwLockReadGuard<'_, VectorIndex> {
        self.inner.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The index itself, for several changes under one lock (a bulk load).
    pub fn write(&self) -> RwLockWriteGuard<'_, VectorIndex> {
        self.inner.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl From<VectorIndex> for SharedVectorIndex {
    fn from(index: VectorIndex) -> Self {
        SharedVectorIndex { inner: RwLock::new(index) }
    }
}

#[cfg(test)]
mod tests;
