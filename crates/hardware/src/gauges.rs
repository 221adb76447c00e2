//! Host gauges on `/metrics`, set on every background refresh: CPU use and the pressure stall
//! figures of cpu, memory and io. The io pressure has no field in the gRPC contract; here it
//! is at least scraped. Ratios are 0..=1, per the naming rules (base units).

use crate::domain::host::pressure::{PressureResource, read_pressure};

/// Records the gauges; a resource without PSI records nothing rather than zeros.
pub(crate) fn record(cpu_usage_percent: f64) {
    metrics::gauge!("hardware_cpu_usage_ratio").set(cpu_usage_percent / 100.0);
    for (resource, name) in
        [(PressureResource::Cpu, "cpu"), (PressureResource::Memory, "memory"), (PressureResource::Io, "io")]
    {
        let Some(stall) = read_pressure(resource) else { continue };
        for (scope, window, percent) in [
            ("some", "10s", stall.some_avg10),
            ("some", "60s", stall.some_avg60),
            ("some", "300s", stall.some_avg300),
            ("full", "10s", stall.full_avg10),
            ("full", "60s", stall.full_avg60),
            ("full", "300s", stall.full_avg300),
        ] {
            let labels = [("resource", name), ("scope", scope), ("window", window)];
            metrics::gauge!("hardware_pressure_stall_ratio", &labels).set(percent / 100.0);
        }
    }
}
