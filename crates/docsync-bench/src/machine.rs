//! The machine a run happened on: cpu model, cores, memory, kernel, rustc.

use std::process::Command;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub memory: String,
    pub kernel: String,
    pub rustc: String,
}

impl Machine {
    /// Read from `/proc` and `rustc -V`; what cannot be read says "unknown".
    pub fn detect() -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let rustc = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
            .arg("-V")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        let kernel = read("/proc/sys/kernel/osrelease").trim().to_owned();
        Machine {
            cpu_model: cpu_model(&read("/proc/cpuinfo")).unwrap_or_else(|| "unknown".into()),
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory: mem_total_kib(&read("/proc/meminfo"))
                .map(|kib| format!("{:.1} GiB", kib as f64 / (1024.0 * 1024.0)))
                .unwrap_or_else(|| "unknown".into()),
            kernel: if kernel.is_empty() {
                "unknown".into()
            } else {
                kernel
            },
            rustc: rustc.unwrap_or_else(|| "unknown".into()),
        }
    }
}

/// The first `model name` of `/proc/cpuinfo`.
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_owned())
    })
}

/// `MemTotal` of `/proc/meminfo`, in KiB.
pub fn mem_total_kib(meminfo: &str) -> Option<u64> {
    kib_field(meminfo, "MemTotal")
}

/// A `Name:   1234 kB` field of a `/proc` file (`meminfo`, `PID/status`), in KiB.
pub fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        if key.trim() != name {
            return None;
        }
        value.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_model_and_memory() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\nprocessor\t: 1\nmodel name\t: other\n";
        assert_eq!(
            cpu_model(cpuinfo).as_deref(),
            Some("Intel(R) Xeon(R) CPU @ 2.20GHz")
        );
        assert_eq!(cpu_model("processor: 0\n"), None);
        let meminfo = "MemTotal:       24558812 kB\nMemFree:        14000000 kB\n";
        assert_eq!(mem_total_kib(meminfo), Some(24_558_812));
        let status = "Name:\tdocsync\nVmPeak:\t  100 kB\nVmHWM:\t   41236 kB\n";
        assert_eq!(kib_field(status, "VmHWM"), Some(41_236));
        assert_eq!(kib_field(status, "VmRSS"), None);
    }
}
