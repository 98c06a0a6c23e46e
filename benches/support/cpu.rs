//! Where a benchmark spends the machine: this process's CPU time and the Samba DC's, read
//! from `/proc` (the client and the directory share these cores).

use std::time::Duration;

/// CPU time (user + system) of this process and its waited-for children (`ldapmodify`), and of
/// every `samba` process, from `/proc`: where each way spends the machine. `None` off Linux.
pub fn cpu() -> (Option<Duration>, Option<Duration>) {
    let ticks = |stat: &str, fields: &[usize]| -> Option<Duration> {
        // After the command name in parentheses, fields count from 3 (state).
        let rest = stat.rsplit_once(')')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let sum: u64 = fields
            .iter()
            .map(|i| f.get(i - 3).and_then(|v| v.parse::<u64>().ok()))
            .sum::<Option<u64>>()?;
        // USER_HZ is 100 on every Linux this runs on.
        Some(Duration::from_millis(sum * 10))
    };
    let own = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| ticks(&s, &[14, 15, 16, 17]));
    let samba = std::fs::read_dir("/proc").ok().map(|dir| {
        dir.flatten()
            .filter(|e| {
                std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c.starts_with(b"samba"))
            })
            .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
            .filter_map(|s| ticks(&s, &[14, 15]))
            .sum()
    });
    (own, samba)
}
