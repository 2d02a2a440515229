//! The index against a naive scan: same ids, same order, same scores.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

fn random_unit(rng: &mut StdRng, dims: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..dims).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    assert!(normalize(&mut v));
    v
}

/// Every stored row scored in f64, best first, ties by smaller id.
fn naive(index: &VectorIndex, query: &[f32], k: usize, accepts: &dyn Fn(u64) -> bool) -> Vec<(u64, f32)> {
    let mut q = query.to_vec();
    normalize(&mut q);
    let mut all: Vec<(u64, f64)> = index
        .ids
        .iter()
        .filter(|id| accepts(**id))
        .map(|&id| {
            let row = index.get(id).unwrap();
            (id, row.iter().zip(&q).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum())
        })
        .collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all.into_iter().map(|(id, s)| (id, s as f32)).collect()
}

fn assert_same(got: &[(u64, f32)], expected: &[(u64, f32)]) {
    let ids = |hits: &[(u64, f32)]| hits.iter().map(|h| h.0).collect::<Vec<_>>();
    assert_eq!(ids(got), ids(expected));
    for (g, e) in got.iter().zip(expected) {
        assert!((g.1 - e.1).abs() < 1e-5, "{g:?} vs {e:?}");
    }
}

#[test]
fn search_is_exact_small_and_large() {
    let mut rng = StdRng::seed_from_u64(7);
    // 300 rows: one thread; 6,000 rows of 384: the parallel scan (above PARALLEL_MIN_FLOATS).
    for (rows, dims) in [(300usize, 33usize), (6_000, 384)] {
        assert_eq!(rows * dims >= PARALLEL_MIN_FLOATS, dims == 384);
        let mut index = VectorIndex::new(dims);
        for id in 0..rows {
            index.insert(id as u64 * 3 + 1, &random_unit(&mut rng, dims)).unwrap();
        }
        for _ in 0..3 {
            let query = random_unit(&mut rng, dims);
            let expected = naive(&index, &query, 57, &|_| true);
            for k in [1, 10, 57] {
                let got = index.search(&query, k, None).unwrap();
                assert_same(&got, &expected[..k]);
            }
        }
        // A stored vector is its own best match, at cosine 1.
        let own = index.get(index.ids[17]).unwrap().to_vec();
        let got = index.search(&own, 1, None).unwrap();
        assert_eq!(got[0].0, index.ids[17]);
        assert!((got[0].1 - 1.0).abs() < 1e-5);
    }
}

#[test]
fn filter_restricts_candidates_and_k_beyond_len_returns_all() {
    let mut rng = StdRng::seed_from_u64(11);
    let mut index = VectorIndex::new(16);
    for id in 0..200 {
        index.insert(id, &random_unit(&mut rng, 16)).unwrap();
    }
    let query = random_unit(&mut rng, 16);
    let even = |id: u64| id.is_multiple_of(2);
    let got = index.search(&query, 10, Some(&even)).unwrap();
    assert!(got.iter().all(|(id, _)| id % 2 == 0));
    assert_same(&got, &naive(&index, &query, 10, &even));
    assert_eq!(index.search(&query, 1000, None).unwrap().len(), 200);
    assert!(index.search(&query, 5, Some(&|_| false)).unwrap().is_empty());
    assert!(index.search(&query, 0, None).unwrap().is_empty());
    assert!(VectorIndex::new(16).search(&query, 3, None).unwrap().is_empty());
}

#[test]
fn remove_and_replace_keep_the_index_consistent() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut index = VectorIndex::new(8);
    let vectors: Vec<Vec<f32>> = (0..50).map(|_| random_unit(&mut rng, 8)).collect();
    for (id, v) in vectors.iter().enumerate() {
        assert!(index.insert(id as u64, v).unwrap());
    }
    // Remove the first (the last row moves into its slot), one in the middle, the last.
    for id in [0, 25, 49] {
        assert!(index.remove(id));
        assert!(!index.remove(id));
        assert!(!index.contains(id));
    }
    assert_eq!(index.len(), 47);
    for (id, v) in vectors.iter().enumerate() {
        let id = id as u64;
        if [0, 25, 49].contains(&id) {
            assert_eq!(index.get(id), None);
            continue;
        }
        // Every remaining id still finds its own vector first.
        assert_eq!(index.get(id).unwrap(), v.as_slice());
        assert_eq!(index.search(v, 1, None).unwrap()[0].0, id);
    }
    // Replacing keeps the count and changes the answer.
    assert!(!index.insert(7, &vectors[0]).unwrap());
    assert_eq!(index.len(), 47);
    assert_eq!(index.search(&vectors[0], 1, None).unwrap()[0].0, 7);
    let removed = naive(&index, &vectors[25], 47, &|_| true);
    assert!(removed.iter().all(|(id, _)| *id != 25));
    index.clear();
    assert!(index.is_empty());
}

#[test]
fn vectors_are_normalised_and_bad_ones_refused() {
    let mut index = VectorIndex::new(2);
    index.insert(1, &[3.0, 4.0]).unwrap();
    assert_eq!(index.get(1).unwrap(), [0.6, 0.8]);
    assert_eq!(index.insert(2, &[1.0]), Err(IndexError::Dimensions { expected: 2, got: 1 }));
    assert_eq!(index.insert(2, &[0.0, 0.0]), Err(IndexError::Zero));
    assert_eq!(index.insert(2, &[f32::NAN, 1.0]), Err(IndexError::NotFinite));
    assert_eq!(index.search(&[1.0, 2.0, 3.0], 1, None), Err(IndexError::Dimensions { expected: 2, got: 3 }));
    let hits = index.search(&[30.0, 40.0], 1, None).unwrap();
    assert_eq!(hits[0].0, 1);
    assert!((hits[0].1 - 1.0).abs() < 1e-6);
}

#[test]
fn shared_index_serves_readers_on_many_threads() {
    let shared = SharedVectorIndex::new(4);
    shared.insert(1, &[1.0, 0.0, 0.0, 0.0]).unwrap();
    shared.insert(2, &[0.0, 1.0, 0.0, 0.0]).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| assert_eq!(shared.search(&[0.1, 1.0, 0.0, 0.0], 1, None).unwrap()[0].0, 2));
        }
    });
    assert!(shared.remove(2));
    assert_eq!(shared.len(), 1);
}
