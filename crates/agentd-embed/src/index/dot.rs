//! The scan's inner loop: dot products of one query with many contiguous rows.
//!
//! Written so the compiler vectorises it without `unsafe` intrinsics or nightly `std::simd`:
//! sixteen independent accumulators (lane-wise sums need no reassociation of float additions,
//! which Rust never does on its own). On x86-64 the same body is also compiled with AVX2 and FMA
//! enabled and chosen at run time when the CPU has them (the default target only assumes SSE2).

/// Accumulators per dot product: two AVX registers, four SSE ones.
const LANES: usize = 16;

/// Computes the dot product of `query` with each `dims`-long row of `rows` that `keep` accepts
/// (by row number; every row without it) and hands `(row number, score)` to `visit`, rows in
/// order.
pub(crate) fn scan(rows: &[f32], query: &[f32], keep: Option<&dyn Fn(usize) -> bool>, visit: &mut dyn FnMut(usize, f32)) {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            unsafe { scan_avx2_fma(rows, query, keep, visit) };
            return;
        }
    }
    scan_body::<false>(rows, query, keep, visit);
}

/// The dot product of two equally long slices (the portable body).
#[cfg(test)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    dot_body::<false>(a, b)
}

#[cfg(target_arch = "x86_64")]
fn has_avx2_fma() -> bool {
    use std::sync::OnceLock;
    static DETECTED: OnceLock<bool> = OnceLock::new();
    *DETECTED.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn scan_avx2_fma(rows: &[f32], query: &[f32], keep: Option<&dyn Fn(usize) -> bool>, visit: &mut dyn FnMut(usize, f32)) {
    scan_body::<true>(rows, query, keep, visit);
}

#[inline(always)]
fn scan_body<const FMA: bool>(rows: &[f32], query: &[f32], keep: Option<&dyn Fn(usize) -> bool>, visit: &mut dyn FnMut(usize, f32)) {
    let dims = query.len();
    if dims == 0 {
        return;
    }
    let rows = rows.chunks_exact(dims).enumerate();
    match keep {
        None => rows.for_each(|(row, values)| visit(row, dot_body::<FMA>(values, query))),
        // Rows refused are skipped before their dot product.
        Some(keep) => rows.filter(|(row, _)| keep(*row)).for_each(|(row, values)| visit(row, dot_body::<FMA>(values, query))),
    }
}

#[inline(always)]
fn dot_body<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (a_rest, b_rest) = (a_chunks.remainder(), b_chunks.remainder());
    for (x, y) in a_chunks.zip(b_chunks) {
        for i in 0..LANES {
            // `mul_add` is one instruction only where FMA is enabled; elsewhere it would be a
            // libm call, so the portable body multiplies and adds.
            acc[i] = if FMA { x[i].mul_add(y[i], acc[i]) } else { acc[i] + x[i] * y[i] };
        }
    }
    let mut sum = 0.0;
    for (x, y) in a_rest.iter().zip(b_rest) {
        sum += x * y;
    }
    // Pairwise, so the tree of additions is the same whatever the lanes held.
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            acc[i] += acc[i + width];
        }
    }
    acc[0] + sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum::<f64>() as f32
    }

    #[test]
    fn dot_matches_a_naive_sum_at_every_length() {
        for len in [0, 1, 7, 15, 16, 17, 31, 33, 384, 385] {
            let a: Vec<f32> = (0..len).map(|i| ((i * 7 % 13) as f32 - 6.0) / 10.0).collect();
            let b: Vec<f32> = (0..len).map(|i| ((i * 5 % 11) as f32 - 5.0) / 10.0).collect();
            assert!((dot(&a, &b) - naive(&a, &b)).abs() < 1e-4, "len {len}");
        }
    }

    #[test]
    fn scan_visits_every_row_with_its_score() {
        let dims = 20;
        let rows: Vec<f32> = (0..dims * 5).map(|i| (i % 9) as f32 / 9.0).collect();
        let query: Vec<f32> = (0..dims).map(|i| (i % 4) as f32 - 1.5).collect();
        let mut seen = Vec::new();
        scan(&rows, &query, Some(&|row| row != 2), &mut |row, score| seen.push((row, score)));
        assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), [0, 1, 3, 4]);
        for (row, score) in seen {
            let expected = naive(&rows[row * dims..(row + 1) * dims], &query);
            assert!((score - expected).abs() < 1e-4);
        }
    }
}
