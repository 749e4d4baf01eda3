//! The command's memory allocator settings: keep freed activation memory for the next step.
//!
//! glibc hands blocks above its mmap threshold (adaptive, at most 32 MiB) straight back to the
//! kernel when they are freed, and trims the heap's top once more than twice that is free. A
//! training step on the CPU frees and re-allocates the same tens of megabytes of activations
//! and gradients every step, so each step page-faulted and zeroed them again: perf put about a
//! fifth of a ResNet-20 step (batch 128) in the kernel's page-fault path. With trimming only
//! past 1 GiB free and no block mapped on its own, the memory stays in the process between
//! steps (the resident size stays at its peak, as PyTorch's caching allocators do on GPUs).
//!
//! Blocks of 32 MiB and more (ResNet-18's stem activations and their gradients at batch 16
//! are 51 MB) cannot stay below the mmap threshold, glibc's maximum: each came as fresh pages
//! mapped to the kernel's shared zero page. A kernel that reads its output before writing it
//! (max pooling's backward scatter, gemm accumulating) then took two faults per 4 KiB page,
//! the second one flushing the TLB of every core by interrupt: 9 % of a ResNet-18 training
//! step's samples, 2.9 s of system time in 7 steps. So no block is mapped on its own.
//!
//! The worker threads' blocks went the same way: glibc gives each thread an arena of its own,
//! made of 64 MiB heaps that are unmapped as soon as one is wholly free, so a worker's 16 MB
//! Winograd gradient buffer came back as fresh pages every step (5,700 such double faults
//! per ResNet-18 step). One arena for every thread keeps them too; the threads allocate a few
//! large blocks per layer, so they rarely wait for its lock.
//!
//! Only the command does this: a library must not change process-wide allocator settings.

/// Applies the settings (glibc on Linux; elsewhere nothing).
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it runs first thing in `main`, before
    // any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
