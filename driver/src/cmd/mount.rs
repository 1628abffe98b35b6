//! `dcs-csi mount`: serve one bucket (or prefix) over FUSE at a directory, in
//! the foreground, until unmounted or SIGTERM/SIGINT (then open files are
//! committed and the mount is removed). Credentials come from
//! `--credentials-file` or the environment, never from argv. Prints
//! `dcs-csi: mounted ...` on stdout once the mount is live.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::CmdError;
use crate::config::secrets::StoreSecrets;
use crate::fs::{Filesystem, MountOptions, fuse};
use crate::store::s3::{ChecksumPolicy, S3Store};

/// Arguments of `dcs-csi mount`.
#[derive(Debug, Args)]
pub struct MountArgs {
    /// Bucket to mount.
    #[arg(long)]
    pub bucket: String,
    /// Key prefix to use as the volume root (e.g. `vols/pvc-123/`).
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// S3 endpoint URL (overrides the credentials file).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Region string (overrides the credentials file).
    #[arg(long)]
    pub region: Option<String>,
    /// JSON file with accessKeyID/secretAccessKey[/endpoint/region]; else the
    /// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY environment variables.
    #[arg(long)]
    pub credentials_file: Option<PathBuf>,
    /// Owner of files and directories without a stored owner.
    #[arg(long, default_value_t = 0)]
    pub uid: u32,
    /// Group of files and directories without a stored group.
    #[arg(long, default_value_t = 0)]
    pub gid: u32,
    /// Mode of files without a stored mode (octal).
    #[arg(long, default_value = "0644", value_parser = parse_octal)]
    pub file_mode: u32,
    /// Mode of directories (octal).
    #[arg(long, default_value = "0755", value_parser = parse_octal)]
    pub dir_mode: u32,
    /// Let other users access the mount.
    #[arg(long)]
    pub allow_other: bool,
    /// Mount read-only.
    #[arg(long)]
    pub read_only: bool,
    /// Attribute and listing cache lifetime, seconds.
    #[arg(long, default_value_t = 1)]
    pub metadata_ttl_secs: u64,
    /// Base multipart part size, MiB (minimum 5).
    #[arg(long, default_value_t = 8)]
    pub part_size_mib: u64,
    /// Memory budget for prefetch and upload buffers, MiB.
    #[arg(long, default_value_t = 64)]
    pub max_memory_mib: u64,
    /// Directory for staging files of files being written.
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Checksum policy: when-required or always.
    #[arg(long, default_value = "when-required")]
    pub checksum: ChecksumPolicy,
    /// Directory to mount on.
    pub mountpoint: PathBuf,
}

fn parse_octal(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8).map_err(|e| format!("not octal: {e}"))
}

fn secrets(args: &MountArgs) -> Result<StoreSecrets, CmdError> {
    let mut s = match &args.credentials_file {
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .map_err(|e| format!("cannot read credentials file {}: {e}", f.display()))?;
            StoreSecrets::from_json(&text)?
        }
        None => {
            let mut m = std::collections::HashMap::new();
            for k in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
                if let Ok(v) = std::env::var(k) {
                    m.insert(k.to_string(), v);
                }
            }
            StoreSecrets::from_map(&m).map_err(|e| {
                format!("no credentials: give --credentials-file or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY ({e})")
            })?
        }
    };
    if let Some(e) = &args.endpoint {
        s.endpoint = Some(e.trim_end_matches('/').to_string());
    }
    if let Some(r) = &args.region {
        s.region = r.clone();
    }
    Ok(s)
}

/// Mounts and serves until unmounted.
pub fn run(args: MountArgs) -> Result<(), CmdError> {
    let secrets = secrets(&args)?;
    let opts = MountOptions {
        uid: args.uid,
        gid: args.gid,
        file_mode: args.file_mode,
        dir_mode: args.dir_mode,
        allow_other: args.allow_other,
        read_only: args.read_only,
        metadata_ttl: Duration::from_secs(args.metadata_ttl_secs),
        part_size: args.part_size_mib.max(5) << 20,
        max_memory: args.max_memory_mib.max(16) << 20,
        cache_dir: args.cache_dir.clone().unwrap_or_else(std::env::temp_dir),
    };
    std::fs::create_dir_all(&opts.cache_dir)
        .map_err(|e| format!("cannot create cache dir {}: {e}", opts.cache_dir.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()?;
    let store = Arc::new(S3Store::new(&secrets.s3_config(args.checksum)));
    let fs = Arc::new(Filesystem::new(store, &args.bucket, &args.prefix, opts));
    rt.block_on(fs.check_bucket()).map_err(|e| {
        format!(
            "bucket {:?} at {} is not reachable: {e}",
            args.bucket,
            secrets.endpoint.as_deref().unwrap_or("AWS")
        )
    })?;
    let mut session = fuse::mount(fs.clone(), rt.handle().clone(), &args.mountpoint)
        .map_err(|e| format!("cannot mount {}: {e}", args.mountpoint.display()))?;
    tracing::info!(bucket = %args.bucket, prefix = %args.prefix, mountpoint = %args.mountpoint.display(), "mounted");
    println!(
        "dcs-csi: mounted bucket {} at {}",
        args.bucket,
        args.mountpoint.display()
    );
    let mut unmounter = session.unmount_callable();
    let fs2 = fs.clone();
    let mountpoint = args.mountpoint.clone();
    rt.spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("signal received: committing open files and unmounting");
        let committed = fs2.commit_all().await;
        if let Err(e) = &committed {
            tracing::error!(error = %e, "some open files could not be committed");
        }
        let code = if committed.is_ok() { 0 } else { 1 };
        if let Err(e) = unmounter.unmount() {
            // Busy (files still open): detach lazily; every file that could be
            // committed is in the bucket already.
            tracing::warn!(error = %e, "unmount failed; detaching lazily");
            let _ = nix::mount::umount2(&mountpoint, nix::mount::MntFlags::MNT_DETACH);
        }
        // A detached mount with open files keeps the session alive until they
        // close; do not wait for that.
        tokio::time::sleep(Duration::from_secs(2)).await;
        tracing::info!("files still open after unmount; exiting");
        std::process::exit(code);
    });
    let served = session.run();
    let committed = rt.block_on(fs.commit_all());
    tracing::info!("unmounted");
    served.map_err(|e| format!("FUSE session ended with an error: {e}"))?;
    committed.map_err(|e| format!("open files could not be committed: {e}"))?;
    Ok(())
}
