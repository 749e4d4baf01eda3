//! The command's memory allocator settings: keep freed activation memory for the next step.
//!
//! glibc hands blocks above its mmap threshold (adaptive, at most 32 MiB) straight back to the
//! kernel when they are freed, and trims the heap's top once more than twice that is free. A
//! training step on the CPU frees and re-allocates the same tens of megabytes of activations
//! and gradients every step, so each step page-faulted and zeroed them again: perf put about a
//! fifth of a ResNet-20 step (batch 128) in the kernel's page-fault path. With the threshold
//! fixed at glibc's maximum and trimming only past 1 GiB free, the memory stays in the process
//! between steps (the resident size stays at its peak, as PyTorch's caching allocators do on
//! GPUs). Before/after figures are in the commit that added it and in the README.
//!
//! Only the command does this: a library must not change process-wide allocator settings.

/// Applies the settings (glibc on Linux; elsewhere nothing).
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it runs first thing in `main`, before
    // any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
