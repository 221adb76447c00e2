//! Host metrics from this machine, and the operational HTTP routes on the same port.

use sutazai_proto::v1 as pb;

use crate::{authorized, spawn};

#[tokio::test]
async fn metrics_describe_this_host() {
    let hardware = spawn().await;
    let request = pb::GetMetricsRequest { top_processes: 3 };
    let metrics = hardware
        .client()
        .await
        .get_metrics(authorized(request, &hardware.user()))
        .await
        .unwrap()
        .into_inner()
        .metrics
        .unwrap();
    let cpu = metrics.cpu.unwrap();
    assert!(!cpu.cores.is_empty());
    assert!(cpu.cores.iter().all(|core| (0.0..=100.0).contains(&core.usage_percent)));
    assert!((0.0..=100.0).contains(&cpu.usage_percent));
    assert_eq!(cpu.pressure.is_some(), std::path::Path::new("/proc/pressure/cpu").exists());
    let memory = metrics.memory.unwrap();
    assert!(memory.total_bytes > 0);
    assert!(memory.used_bytes <= memory.total_bytes);
    assert_eq!(metrics.top_processes.len(), 3);
    assert!(metrics.top_processes.windows(2).all(|pair| pair[0].cpu_percent >= pair[1].cpu_percent));
    assert!(metrics.networks.iter().any(|network| network.name == "lo"));
    assert!(!metrics.hostname.is_empty());
    assert!(metrics.uptime_s > 0);
    assert!(metrics.collected_at.is_some());

    let status = hardware
        .client()
        .await
        .get_metrics(authorized(pb::GetMetricsRequest { top_processes: 1001 }, &hardware.user()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(status.message(), "top_processes: must be at most 1000");
}

#[tokio::test]
async fn operational_routes_answer() {
    let hardware = spawn().await;
    let client = reqwest::Client::new();
    for (path, expected) in [("/livez", 200), ("/readyz", 200), ("/metrics", 200), ("/nope", 404)] {
        let response = client.get(format!("http://{}{path}", hardware.address)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), expected, "{path}");
    }
    // Host gauges appear once the sampler has refreshed, io pressure included where PSI exists.
    hardware.service.refresh_sampler().await.unwrap();
    let text = client
        .get(format!("http://{}/metrics", hardware.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("hardware_cpu_usage_ratio"), "{text}");
    assert_eq!(
        text.contains("hardware_pressure_stall_ratio{resource=\"io\",scope=\"some\",window=\"10s\"}"),
        std::path::Path::new("/proc/pressure/io").exists(),
        "{text}"
    );
}
