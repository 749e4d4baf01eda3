//! Output buffers zeroed in parts, each by the thread that then writes it.
//!
//! `vec![0.0; n]` zeroes a whole buffer on the calling thread before any kernel starts: glibc's
//! calloc must clear memory it reuses (and the command keeps freed memory between steps,
//! src/cli/allocator.rs). On a ResNet-20 training step (batch 128, 2 threads) perf put that
//! memset at 7 % of the samples, most of it on the thread that runs the autodiff graph while
//! the others waited for the kernels it was about to start.

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
    if len == 0 {
        return (Vec::new(), Vec::new());
    }
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let spare = &mut out.spare_capacity_mut()[..len];
    let run = |(i, part): (usize, &mut [MaybeUninit<f32>])| f(i, zeroed(part));
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
    // SAFETY: the parts cover the first `len` floats (chunks of a slice cover it), and
    // `zeroed` wrote every float of each part before `f` saw it.
    unsafe { out.set_len(len) };
    (out, results)
}

/// `part`, every float set to zero, as floats.
fn zeroed(part: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    part.fill(MaybeUninit::new(0.0));
    // SAFETY: every element was just written, and `MaybeUninit<f32>` has `f32`'s layout.
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
}
