//! The k best hits of a scan: a min-heap of size k whose root is the hit to beat.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// One scored row: its id and its cosine with the query.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hit {
    pub(crate) id: u64,
    pub(crate) score: f32,
}

impl Ord for Hit {
    /// Better is greater: a higher score, then (ties) a smaller id, so results are deterministic.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score.total_cmp(&other.score).then_with(|| other.id.cmp(&self.id))
    }
}

impl PartialOrd for Hit {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Hit {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Hit {}

/// Keeps the `k` best hits offered to it.
pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<Reverse<Hit>>,
    /// The worst kept score once `k` are kept (−∞ before): most rows fail this one comparison
    /// and never touch the heap.
    floor: f32,
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        TopK { k, heap: BinaryHeap::with_capacity(k + 1), floor: f32::NEG_INFINITY }
    }

    #[inline]
    pub(crate) fn offer(&mut self, id: u64, score: f32) {
        if self.k == 0 || score < self.floor {
            return;
        }
        let hit = Hit { id, score };
        if self.heap.len() < self.k {
            self.heap.push(Reverse(hit));
        } else if let Some(mut worst) = self.heap.peek_mut()
            && hit > worst.0
        {
            *worst = Reverse(hit);
        } else {
            return;
        }
        if self.heap.len() == self.k {
            self.floor = self.heap.peek().map_or(f32::NEG_INFINITY, |worst| worst.0.score);
        }
    }

    /// Adds the hits another scan kept.
    pub(crate) fn merge(&mut self, other: TopK) {
        for Reverse(hit) in other.heap {
            self.offer(hit.id, hit.score);
        }
    }

    /// The kept hits, best first.
    pub(crate) fn into_sorted(self) -> Vec<(u64, f32)> {
        let mut hits: Vec<Hit> = self.heap.into_iter().map(|Reverse(hit)| hit).collect();
        hits.sort_unstable_by(|a, b| b.cmp(a));
        hits.into_iter().map(|hit| (hit.id, hit.score)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_best_k_best_first_with_ties_by_smaller_id() {
        let mut top = TopK::new(3);
        for (id, score) in [(1, 0.1), (2, 0.9), (3, 0.5), (4, 0.9), (5, -1.0), (6, 0.7), (0, 0.5)] {
            top.offer(id, score);
        }
        assert_eq!(top.into_sorted(), [(2, 0.9), (4, 0.9), (6, 0.7)]);
    }

    #[test]
    fn zero_k_keeps_nothing_and_merge_combines() {
        let mut none = TopK::new(0);
        none.offer(1, 1.0);
        assert!(none.into_sorted().is_empty());
        let (mut a, mut b) = (TopK::new(2), TopK::new(2));
        a.offer(1, 0.2);
        a.offer(2, 0.4);
        b.offer(3, 0.3);
        b.offer(4, 0.5);
        a.merge(b);
        assert_eq!(a.into_sorted(), [(4, 0.5), (2, 0.4)]);
    }
}
