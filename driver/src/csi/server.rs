//! Hosting the CSI services: binds the endpoint (removing a stale socket file
//! first), serves until the shutdown future resolves, then removes the socket.

use std::future::Future;

use dcs_csi_proto::v1::controller_server::{Controller, ControllerServer};
use dcs_csi_proto::v1::identity_server::IdentityServer;
use dcs_csi_proto::v1::node_server::{Node, NodeServer};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, UnixListener};
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::service::Routes;
use tonic::transport::Server;

use tokio::sync::Notify;
use tracing::{info, warn};

use super::endpoint::Endpoint;
use super::identity::IdentityService;

/// Errors of starting or running the server.
pub type ServeError = Box<dyn std::error::Error + Send + Sync>;

/// The routes of the services one process serves: Identity always, Controller
/// and Node when given.
pub fn routes(
    identity: IdentityService,
    controller: Option<impl Controller>,
    node: Option<impl Node>,
) -> Routes {
    let mut r = Routes::new(IdentityServer::new(identity));
    if let Some(c) = controller {
        r = r.add_service(ControllerServer::new(c));
    }
    if let Some(n) = node {
        r = r.add_service(NodeServer::new(n));
    }
    r
}

/// Serves `routes` on `endpoint` until `shutdown` resolves.
pub async fn serve(
    endpoint: &Endpoint,
    routes: Routes,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let router = Server::builder().add_routes(routes);
    match endpoint {
        Endpoint::Unix(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            match std::fs::remove_file(path) {
                Ok(()) => info!(path = %path.display(), "removed stale socket"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(
                        format!("cannot remove stale socket {}: {e}", path.display()).into(),
                    );
                }
            }
            let listener = UnixListener::bind(path)?;
            info!(endpoint = %path.display(), "serving CSI on unix socket");
            let r = run_until(
                |graceful| {
                    router.serve_with_incoming_shutdown(UnixListenerStream::new(listener), graceful)
                },
                shutdown,
            )
            .await;
            let _ = std::fs::remove_file(path);
            r?;
        }
        Endpoint::Tcp(addr) => {
            let listener = TcpListener::bind(addr).await?;
            info!(endpoint = %listener.local_addr()?, "serving CSI on tcp");
            run_until(
                |graceful| {
                    router.serve_with_incoming_shutdown(TcpListenerStream::new(listener), graceful)
                },
                shutdown,
            )
            .await?;
        }
    }
    info!("server stopped");
    Ok(())
}

/// How long in-flight requests may run after a shutdown signal. Sidecars keep
/// their connections open, so waiting for every connection to close would never end.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Runs a server future; on `shutdown`, asks it to stop gracefully and gives it
/// [`SHUTDOWN_GRACE`] before returning anyway.
async fn run_until<F, S>(server: S, shutdown: impl Future<Output = ()>) -> Result<(), ServeError>
where
    S: FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> F,
    F: Future<Output = Result<(), tonic::transport::Error>>,
{
    let notify = Arc::new(Notify::new());
    let n = notify.clone();
    let fut = server(Box::pin(async move { n.notified().await }));
    tokio::pin!(fut, shutdown);
    tokio::select! {
        r = &mut fut => r?,
        () = &mut shutdown => {
            notify.notify_one();
            match tokio::time::timeout(SHUTDOWN_GRACE, fut).await {
                Ok(r) => r?,
                Err(_) => warn!("requests still running after the shutdown grace period; stopping anyway"),
            }
        }
    }
    Ok(())
}
