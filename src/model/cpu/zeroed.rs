//! Output buffers zeroed in parts, each by the thread that then writes it.
//!
//! `vec![0.0; n]` zeroes a whole buffer on the calling thread before any kernel starts: glibc's
//! calloc must clear memory it reuses (and the command keeps freed memory between steps,
//! src/cli/allocator.rs). On a ResNet-20 training step (batch 128, 2 threads) perf put that
//! memset at 7 % of the samples, most of it on the thread that runs the autodiff graph while
//! the others waited for the kernels it was about to start. Outputs that their kernel writes
//! whole are not zeroed at all ([written_parts]).

use core::mem::MaybeUninit;

/// A buffer of `len` floats cut into parts of `part` floats (the last may be shorter): each
/// part is zeroed, then `f(index, part)` runs, on the thread that takes the part (over every
/// thread with `cfg(parallel)`). Returns the buffer and what `f` returned, part by part.
///
/// Big buffers too: calloc's fresh pages would spare the zeroing but fault twice per page
/// under a kernel that reads before it writes, and the command keeps no block mapped on its
/// own anyway (src/cli/allocator.rs), so its calloc would zero them on one thread.
pub(crate) fn zeroed_parts<R: Send>(
    len: usize,
    part: usize,
    f: impl Fn(usize, &mut [f32]) -> R + Sync + Send,
) -> (Vec<f32>, Vec<R>) {
    // SAFETY: `zeroed` writes every float of each part.
    unsafe { written_parts(len, part, |i, part| f(i, zeroed(part))) }
}

/// [zeroed_parts] for outputs that `f` writes whole: nothing is zeroed first, which spares a
/// pass over memory that would be overwritten anyway (the outputs of batch normalization, of
/// the fused join, of a convolution's first gemm).
///
/// In debug builds (the tests) each part holds NaNs when `f` gets it, so that a float `f`
/// leaves unwritten shows in the result.
///
/// # Safety
/// `f(index, part)` must write every float of `part`.
pub(crate) unsafe fn written_parts<R: Send>(
    len: usize,
    part: usize,
    f: impl Fn(usize, &mut [MaybeUninit<f32>]) -> R + Sync + Send,
) -> (Vec<f32>, Vec<R>) {
    if len == 0 {
        return (Vec::new(), Vec::new());
    }
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let spare = &mut out.spare_capacity_mut()[..len];
    let run = |(i, part): (usize, &mut [MaybeUninit<f32>])| {
        if cfg!(debug_assertions) {
            part.fill(MaybeUninit::new(f32::NAN));
        }
        f(i, part)
    };
    #[cfg(parallel)]
    let results = {
        use rayon::prelude::*;
        spare
            .par_chunks_mut(part.max(1))
            .enumerate()
            .map(run)
            .collect()
    };
    #[cfg(not(parallel))]
    let results = spare.chunks_mut(part.max(1)).enumerate().map(run).collect();
    // SAFETY: the parts cover the first `len` floats (chunks of a slice cover it), and the
    // caller's `f` wrote every float of each part.
    unsafe { out.set_len(len) };
    (out, results)
}

/// `part`, every float set to zero, as floats.
pub(crate) fn zeroed(part: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    part.fill(MaybeUninit::new(0.0));
    // SAFETY: every element was just written.
    unsafe { written(part) }
}

/// `part` as floats.
///
/// # Safety
/// Every element of `part` must have been written.
pub(crate) unsafe fn written(part: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    // SAFETY: per the caller every element is initialised, and `MaybeUninit<f32>` has `f32`'s
    // layout.
    unsafe { &mut *(part as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parts are zeroed whatever `f` writes, cover the buffer (the last one short), and come
    /// back in order.
    #[test]
    fn parts_cover_the_buffer_in_order() {
        // Freed just before, this memory is what the allocator hands out next.
        drop(std::hint::black_box(vec![7.0f32; 10]));
        let (out, seen) = zeroed_parts(10, 4, |i, part| {
            assert!(part.iter().all(|&v| v == 0.0));
            part[0] = i as f32 + 1.0;
            (i, part.len())
        });
        assert_eq!(seen, [(0, 4), (1, 4), (2, 2)]);
        assert_eq!(out, [1.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 3.0, 0.0]);
        assert_eq!(zeroed_parts(0, 0, |_, _| ()), (Vec::new(), Vec::new()));
    }

    /// Parts of a written buffer cover it in order and, in the tests' debug build, arrive
    /// holding NaNs: what a kernel leaves unwritten shows.
    #[test]
    fn written_parts_arrive_poisoned_and_cover_the_buffer() {
        drop(std::hint::black_box(vec![0.0f32; 10]));
        // SAFETY: every float of each part is written.
        let (out, seen) = unsafe {
            written_parts(10, 4, |i, part| {
                // SAFETY: read only where debug builds wrote the poison.
                let poisoned =
                    cfg!(debug_assertions) && part.iter().all(|v| v.assume_init().is_nan());
                for (k, v) in part.iter_mut().enumerate() {
                    v.write((10 * i + k) as f32);
                }
                (poisoned, part.len())
            })
        };
        assert_eq!(
            seen,
            [
                (cfg!(debug_assertions), 4),
                (cfg!(debug_assertions), 4),
                (cfg!(debug_assertions), 2)
            ]
        );
        assert_eq!(
            out,
            [0.0, 1.0, 2.0, 3.0, 10.0, 11.0, 12.0, 13.0, 20.0, 21.0]
        );
    }
}
