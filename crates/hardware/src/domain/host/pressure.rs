//! Linux pressure stall information from `/proc/pressure/{cpu,memory,io}`: the share of time
//! tasks waited for a resource. Absent on kernels without PSI (or with it disabled), in which
//! case the metrics leave it unset rather than report zeros that would read as "no pressure".

use std::path::Path;

/// Pressure on one resource, in percent of time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PressureStall {
    /// Some tasks stalled, averaged over 10 s.
    pub some_avg10: f64,
    /// Over 60 s.
    pub some_avg60: f64,
    /// Over 300 s.
    pub some_avg300: f64,
    /// All non-idle tasks stalled, averaged over 10 s (0 for cpu on older kernels).
    pub full_avg10: f64,
    /// Over 60 s.
    pub full_avg60: f64,
    /// Over 300 s.
    pub full_avg300: f64,
}

/// One resource PSI covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PressureResource {
    /// `/proc/pressure/cpu`.
    Cpu,
    /// `/proc/pressure/memory`.
    Memory,
    /// `/proc/pressure/io`.
    Io,
}

impl PressureResource {
    fn file(self) -> &'static str {
        match self {
            Self::Cpu => "/proc/pressure/cpu",
            Self::Memory => "/proc/pressure/memory",
            Self::Io => "/proc/pressure/io",
        }
    }
}

/// Reads the pressure of `resource`; `None` where PSI is unavailable.
pub fn read_pressure(resource: PressureResource) -> Option<PressureStall> {
    read_pressure_file(Path::new(resource.file()))
}

fn read_pressure_file(path: &Path) -> Option<PressureStall> {
    parse_pressure(&std::fs::read_to_string(path).ok()?)
}

/// Parses the `some avg10=.. avg60=.. avg300=.. total=..` / `full ...` lines; `None` without a
/// `some` line.
pub fn parse_pressure(text: &str) -> Option<PressureStall> {
    let mut stall = PressureStall::default();
    let mut saw_some = false;
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let kind = fields.next();
        let mut averages = [0.0_f64; 3];
        for field in fields {
            let Some((name, value)) = field.split_once('=') else { continue };
            let slot = match name {
                "avg10" => 0,
                "avg60" => 1,
                "avg300" => 2,
                _ => continue,
            };
            averages[slot] = value.parse().ok()?;
        }
        match kind {
            Some("some") => {
                saw_some = true;
                [stall.some_avg10, stall.some_avg60, stall.some_avg300] = averages;
            }
            Some("full") => [stall.full_avg10, stall.full_avg60, stall.full_avg300] = averages,
            _ => {}
        }
    }
    saw_some.then_some(stall)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_some_and_full() {
        let stall = parse_pressure(
            "some avg10=52.57 avg60=34.60 avg300=12.57 total=51875725\nfull avg10=1.50 avg60=0.25 avg300=0.00 total=0\n",
        )
        .unwrap_or_default();
        assert_eq!(stall.some_avg10, 52.57);
        assert_eq!(stall.some_avg300, 12.57);
        assert_eq!(stall.full_avg10, 1.5);
        assert_eq!(stall.full_avg60, 0.25);
        let cpu_old_kernel =
            parse_pressure("some avg10=1.00 avg60=2.00 avg300=3.00 total=9\n").unwrap_or_default();
        assert_eq!(cpu_old_kernel.full_avg10, 0.0);
        assert_eq!(parse_pressure(""), None);
        assert_eq!(parse_pressure("some avg10=x avg60=1 avg300=1 total=1"), None);
        assert_eq!(read_pressure_file(Path::new("/no/such/pressure")), None);
    }
}
