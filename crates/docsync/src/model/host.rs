//! This machine's name, as the kernel has it: what names a daemon in a shared
//! state (its instance, the host it runs on).

/// The host name (`/proc/sys/kernel/hostname`, trimmed); `None` when it
/// cannot be read or is empty.
pub fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}
