//! Property test: random operation sequences against the core and a simple
//! reference model (a map of path → file bytes or directory); results and
//! errnos must agree after every step, and so must the final tree. Tiny parts
//! (128 bytes) make most files multipart, so part streaming, re-upload of
//! rewritten parts and truncation of uploaded parts are all exercised.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;

use crate::store::ObjectStore;
use crate::store::memory::MemoryStore;

use super::inode::{name_of, parent_of};
use super::*;

const PATHS: &[&str] = &["a", "b", "d", "e", "d/a", "d/b", "e/a", "d/f/a"];

#[derive(Debug, Clone)]
enum Op {
    Write {
        p: usize,
        off: u16,
        len: u16,
        byte: u8,
        trunc: bool,
    },
    Truncate {
        p: usize,
        size: u16,
    },
    Unlink {
        p: usize,
    },
    Mkdir {
        p: usize,
    },
    Rmdir {
        p: usize,
    },
    Rename {
        from: usize,
        to: usize,
    },
    Read {
        p: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let p = 0..PATHS.len();
    prop_oneof![
        4 => (p.clone(), 0u16..700, 0u16..400, any::<u8>(), any::<bool>())
            .prop_map(|(p, off, len, byte, trunc)| Op::Write { p, off, len, byte, trunc }),
        1 => (p.clone(), 0u16..800).prop_map(|(p, size)| Op::Truncate { p, size }),
        1 => p.clone().prop_map(|p| Op::Unlink { p }),
        2 => p.clone().prop_map(|p| Op::Mkdir { p }),
        1 => p.clone().prop_map(|p| Op::Rmdir { p }),
        2 => (p.clone(), p.clone()).prop_map(|(from, to)| Op::Rename { from, to }),
        2 => p.prop_map(|p| Op::Read { p }),
    ]
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    File(Vec<u8>),
    Dir,
}

/// The reference: paths to nodes; the root always exists.
#[derive(Debug, Default)]
struct Model(BTreeMap<String, Node>);

type R<T> = Result<T, i32>;

impl Model {
    fn dir(&self, path: &str) -> R<()> {
        if path.is_empty() {
            return Ok(());
        }
        self.dir(parent_of(path))?;
        match self.0.get(path) {
            Some(Node::Dir) => Ok(()),
            Some(_) => Err(libc::ENOTDIR),
            None => Err(libc::ENOENT),
        }
    }
    fn get(&self, path: &str) -> R<Option<&Node>> {
        self.dir(parent_of(path))?;
        Ok(self.0.get(path))
    }
    fn children(&self, path: &str) -> bool {
        let sub = format!("{path}/");
        self.0.keys().any(|k| k.starts_with(&sub))
    }
    fn write(&mut self, path: &str, off: usize, data: &[u8], trunc: bool) -> R<()> {
        let mut f = match self.get(path)? {
            Some(Node::Dir) => return Err(libc::EISDIR),
            Some(Node::File(f)) if !trunc => f.clone(),
            _ => Vec::new(),
        };
        if !data.is_empty() && f.len() < off + data.len() {
            f.resize(off + data.len(), 0);
        }
        if !data.is_empty() {
            f[off..off + data.len()].copy_from_slice(data);
        }
        self.0.insert(path.into(), Node::File(f));
        Ok(())
    }
    fn truncate(&mut self, path: &str, size: usize) -> R<()> {
        match self.get(path)? {
            None => Err(libc::ENOENT),
            Some(Node::Dir) => Err(libc::EISDIR),
            Some(Node::File(f)) => {
                let mut f = f.clone();
                f.resize(size, 0);
                self.0.insert(path.into(), Node::File(f));
                Ok(())
            }
        }
    }
    fn unlink(&mut self, path: &str) -> R<()> {
        match self.get(path)? {
            None => Err(libc::ENOENT),
            Some(Node::Dir) => Err(libc::EISDIR),
            Some(_) => {
                self.0.remove(path);
                Ok(())
            }
        }
    }
    fn mkdir(&mut self, path: &str) -> R<()> {
        match self.get(path)? {
            Some(_) => Err(libc::EEXIST),
            None => {
                self.0.insert(path.into(), Node::Dir);
                Ok(())
            }
        }
    }
    fn rmdir(&mut self, path: &str) -> R<()> {
        match self.get(path)? {
            None => Err(libc::ENOENT),
            Some(Node::File(_)) => Err(libc::ENOTDIR),
            Some(Node::Dir) if self.children(path) => Err(libc::ENOTEMPTY),
            Some(Node::Dir) => {
                self.0.remove(path);
                Ok(())
            }
        }
    }
    fn rename(&mut self, from: &str, to: &str) -> R<()> {
        self.dir(parent_of(from))?;
        self.dir(parent_of(to))?;
        if from == to {
            return if self.0.contains_key(from) {
                Ok(())
            } else {
                Err(libc::ENOENT)
            };
        }
        let src = self.0.get(from).cloned().ok_or(libc::ENOENT)?;
        let dst = self.0.get(to).cloned();
        match (&src, &dst) {
            (Node::Dir, Some(Node::File(_))) => return Err(libc::ENOTDIR),
            (Node::File(_), Some(Node::Dir)) => return Err(libc::EISDIR),
            _ => {}
        }
        if src == Node::Dir {
            if to.starts_with(&format!("{from}/")) {
                return Err(libc::EINVAL);
            }
            if dst.is_some() && self.children(to) {
                return Err(libc::ENOTEMPTY);
            }
        }
        let sub = format!("{from}/");
        let moved: Vec<(String, Node)> = self
            .0
            .iter()
            .filter(|(k, _)| *k == from || k.starts_with(&sub))
            .map(|(k, v)| (format!("{to}{}", &k[from.len()..]), v.clone()))
            .collect();
        self.0.retain(|k, _| k != from && !k.starts_with(&sub));
        self.0.insert(to.into(), src);
        self.0.extend(moved);
        Ok(())
    }
    fn read(&self, path: &str) -> R<Vec<u8>> {
        match self.get(path)? {
            None => Err(libc::ENOENT),
            Some(Node::Dir) => Err(libc::EISDIR),
            Some(Node::File(f)) => Ok(f.clone()),
        }
    }
}

/// Walks `path` from the root with lookups, like the kernel does.
async fn resolve(fs: &Filesystem, path: &str) -> R<Attr> {
    let mut a = fs.getattr(ROOT_INO).await.map_err(|e| e.errno())?;
    if path.is_empty() {
        return Ok(a);
    }
    for part in path.split('/') {
        if a.kind != Kind::Dir {
            return Err(libc::ENOTDIR);
        }
        a = fs.lookup(a.ino, part).await.map_err(|e| e.errno())?;
    }
    Ok(a)
}

async fn parent(fs: &Filesystem, path: &str) -> R<u64> {
    let a = resolve(fs, parent_of(path)).await?;
    if a.kind != Kind::Dir {
        return Err(libc::ENOTDIR);
    }
    Ok(a.ino)
}

async fn apply(fs: &Filesystem, op: &Op) -> R<Option<Vec<u8>>> {
    let e = |e: FsError| e.errno();
    match op {
        Op::Write {
            p,
            off,
            len,
            byte,
            trunc,
        } => {
            let path = PATHS[*p];
            let dir = parent(fs, path).await?;
            let (ino, fh) = match fs.lookup(dir, name_of(path)).await {
                Ok(a) => {
                    let flags = libc::O_WRONLY | if *trunc { libc::O_TRUNC } else { 0 };
                    (a.ino, fs.open(a.ino, flags).await.map_err(e)?)
                }
                Err(err) if err.errno() == libc::ENOENT => {
                    let (a, fh) = fs
                        .create(dir, name_of(path), 0o644, 0, 0)
                        .await
                        .map_err(e)?;
                    (a.ino, fh)
                }
                Err(err) => return Err(err.errno()),
            };
            let data = vec![*byte; *len as usize];
            fs.write(ino, fh, *off as u64, &data).await.map_err(e)?;
            fs.flush(ino, fh).await.map_err(e)?;
            fs.release(ino, fh).await.map_err(e)?;
            Ok(None)
        }
        Op::Truncate { p, size } => {
            let a = resolve(fs, PATHS[*p]).await?;
            let sa = SetAttr {
                size: Some(*size as u64),
                ..Default::default()
            };
            fs.setattr(a.ino, sa).await.map_err(e)?;
            Ok(None)
        }
        Op::Unlink { p } => {
            let dir = parent(fs, PATHS[*p]).await?;
            fs.unlink(dir, name_of(PATHS[*p]))
                .await
                .map_err(e)
                .map(|_| None)
        }
        Op::Mkdir { p } => {
            let dir = parent(fs, PATHS[*p]).await?;
            fs.mkdir(dir, name_of(PATHS[*p]), 0o755)
                .await
                .map_err(e)
                .map(|_| None)
        }
        Op::Rmdir { p } => {
            let dir = parent(fs, PATHS[*p]).await?;
            fs.rmdir(dir, name_of(PATHS[*p]))
                .await
                .map_err(e)
                .map(|_| None)
        }
        Op::Rename { from, to } => {
            let (f, t) = (PATHS[*from], PATHS[*to]);
            let fd = parent(fs, f).await?;
            let td = parent(fs, t).await?;
            fs.rename(fd, name_of(f), td, name_of(t), false)
                .await
                .map_err(e)
                .map(|_| None)
        }
        Op::Read { p } => read_path(fs, PATHS[*p]).await.map(Some),
    }
}

async fn read_path(fs: &Filesystem, path: &str) -> R<Vec<u8>> {
    let e = |e: FsError| e.errno();
    let a = resolve(fs, path).await?;
    let fh = fs.open(a.ino, libc::O_RDONLY).await.map_err(e)?;
    let mut out = Vec::new();
    loop {
        let b = fs.read(a.ino, fh, out.len() as u64, 97).await.map_err(e)?;
        if b.is_empty() {
            break;
        }
        out.extend_from_slice(&b);
    }
    fs.release(a.ino, fh).await.map_err(e)?;
    Ok(out)
}

fn model_apply(m: &mut Model, op: &Op) -> R<Option<Vec<u8>>> {
    match op {
        Op::Write {
            p,
            off,
            len,
            byte,
            trunc,
        } => m
            .write(
                PATHS[*p],
                *off as usize,
                &vec![*byte; *len as usize],
                *trunc,
            )
            .map(|_| None),
        Op::Truncate { p, size } => m.truncate(PATHS[*p], *size as usize).map(|_| None),
        Op::Unlink { p } => m.unlink(PATHS[*p]).map(|_| None),
        Op::Mkdir { p } => m.mkdir(PATHS[*p]).map(|_| None),
        Op::Rmdir { p } => m.rmdir(PATHS[*p]).map(|_| None),
        Op::Rename { from, to } => m.rename(PATHS[*from], PATHS[*to]).map(|_| None),
        Op::Read { p } => m.read(PATHS[*p]).map(Some),
    }
}

/// Every file of the model, read back through a fresh mount of the same store.
async fn check_tree(store: Arc<dyn ObjectStore>, m: &Model) -> Result<(), String> {
    let fs = Filesystem::with_part_size(store, "bkt", "", MountOptions::default(), 128);
    for (path, node) in &m.0 {
        let a = resolve(&fs, path)
            .await
            .map_err(|e| format!("{path}: errno {e}"))?;
        match node {
            Node::Dir if a.kind != Kind::Dir => return Err(format!("{path} should be a dir")),
            Node::File(f) => {
                let got = read_path(&fs, path)
                    .await
                    .map_err(|e| format!("{path}: read errno {e}"))?;
                if &got != f {
                    return Err(format!("{path}: content differs"));
                }
            }
            _ => {}
        }
    }
    for path in PATHS {
        if !m.0.contains_key(*path) && resolve(&fs, path).await.is_ok() {
            return Err(format!("{path} exists but the model has no such path"));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn core_matches_reference_model(ops in prop::collection::vec(op(), 1..30)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let store = Arc::new(MemoryStore::new().with_page_size(2).with_min_part_size(128));
            store.create_bucket("bkt").await.unwrap();
            let fs = Filesystem::with_part_size(store.clone(), "bkt", "", MountOptions::default(), 128);
            let mut model = Model::default();
            for (i, op) in ops.iter().enumerate() {
                let want = model_apply(&mut model, op);
                let got = apply(&fs, op).await;
                prop_assert_eq!(&got, &want, "step {} {:?}", i, op);
            }
            prop_assert_eq!(store.pending_uploads("bkt"), 0);
            let r = check_tree(store.clone(), &model).await;
            prop_assert!(r.is_ok(), "{:?}", r);
            Ok(())
        })?;
    }
}
