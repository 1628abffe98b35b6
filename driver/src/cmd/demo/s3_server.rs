//! The demo's embedded S3 store: s3s-fs (a maintained S3 implementation that
//! keeps objects as files) served in-process on 127.0.0.1 with SigV4 auth.

use std::net::SocketAddr;
use std::path::Path;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::debug;

/// A running embedded S3 server; stops when dropped.
pub struct EmbeddedS3 {
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl EmbeddedS3 {
    /// Serves the directory `root` as an S3 store on a free 127.0.0.1 port.
    pub async fn start(
        root: &Path,
        access_key: &str,
        secret_key: &str,
    ) -> Result<Self, super::super::CmdError> {
        let fs = s3s_fs::FileSystem::new(root).map_err(|e| format!("embedded S3 store: {e:?}"))?;
        let mut b = S3ServiceBuilder::new(fs);
        b.set_auth(SimpleAuth::from_single(access_key, secret_key));
        let service = b.build();
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let http = Builder::new(TokioExecutor::new());
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let conn = http
                    .serve_connection(TokioIo::new(socket), service.clone())
                    .into_owned();
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        debug!(error = %e, "embedded S3 connection ended");
                    }
                });
            }
        });
        Ok(EmbeddedS3 { addr, task })
    }

    /// The endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for EmbeddedS3 {
    fn drop(&mut self) {
        self.task.abort();
    }
}
