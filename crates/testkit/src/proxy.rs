//! A TCP proxy a test can cut: the service under test connects through it, and `set_down(true)`
//! drops every open connection and refuses new ones, as if the server behind it had died —
//! without stopping the server other tests share.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinSet;

/// A cuttable TCP forwarder on 127.0.0.1.
#[derive(Debug)]
pub struct TcpProxy {
    /// Where clients connect.
    pub address: SocketAddr,
    down: Arc<AtomicBool>,
    connections: Arc<Mutex<JoinSet<()>>>,
    accept_task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Forwards a free local port to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener =
            TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|error| panic!("bind proxy: {error}"));
        let address = listener.local_addr().unwrap_or_else(|error| panic!("proxy address: {error}"));
        let down = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let accept_task =
            tokio::spawn(accept_loop(listener, upstream, Arc::clone(&down), Arc::clone(&connections)));
        Self { address, down, connections, accept_task }
    }

    /// Cuts (true) or restores (false) the path to the upstream server.
    pub async fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        if down {
            self.connections.lock().await.abort_all();
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    down: Arc<AtomicBool>,
    connections: Arc<Mutex<JoinSet<()>>>,
) {
    while let Ok((mut client, _)) = listener.accept().await {
        if down.load(Ordering::SeqCst) {
            drop(client);
            continue;
        }
        connections.lock().await.spawn(async move {
            if let Ok(mut server) = TcpStream::connect(upstream).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        });
    }
}
