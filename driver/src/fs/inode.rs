//! The inode table: inode numbers ↔ volume-relative paths (`""` is the root,
//! `a/b` a child), kernel lookup counts, open-handle counts, cached attributes
//! and files that so far exist only locally (created, not yet committed).

use std::collections::HashMap;
use std::time::Instant;

use super::attr::{Attr, Kind};

/// Inode number of the volume root.
pub const ROOT_INO: u64 = 1;

/// One node the kernel knows about.
#[derive(Debug, Clone)]
pub struct Inode {
    /// Path relative to the volume root, no leading or trailing `/`.
    pub path: String,
    /// Kind last seen.
    pub kind: Kind,
    /// Kernel lookup count (entries handed out minus forgets).
    pub lookups: u64,
    /// Open file handles.
    pub open: u32,
    /// Cached attributes and when they were fetched.
    pub attr: Option<(Attr, Instant)>,
    /// Created here and not yet committed to the bucket.
    pub local: bool,
    /// Unlinked or replaced: open handles keep working but never commit.
    pub detached: bool,
}

/// Maps inode numbers to paths and back.
#[derive(Debug)]
pub struct InodeTable {
    by_ino: HashMap<u64, Inode>,
    by_path: HashMap<String, u64>,
    next: u64,
}

impl Default for InodeTable {
    fn default() -> Self {
        Self::new()
    }
}

impl InodeTable {
    /// A table holding only the root.
    pub fn new() -> Self {
        let mut t = InodeTable {
            by_ino: HashMap::new(),
            by_path: HashMap::new(),
            next: ROOT_INO + 1,
        };
        t.by_ino
            .insert(ROOT_INO, Self::node(String::new(), Kind::Dir));
        t.by_path.insert(String::new(), ROOT_INO);
        t
    }

    fn node(path: String, kind: Kind) -> Inode {
        Inode {
            path,
            kind,
            lookups: 0,
            open: 0,
            attr: None,
            local: false,
            detached: false,
        }
    }

    /// The node of `ino`.
    pub fn get(&self, ino: u64) -> Option<&Inode> {
        self.by_ino.get(&ino)
    }

    /// The node of `ino`, mutably.
    pub fn get_mut(&mut self, ino: u64) -> Option<&mut Inode> {
        self.by_ino.get_mut(&ino)
    }

    /// The inode currently at `path`.
    pub fn ino_of(&self, path: &str) -> Option<u64> {
        self.by_path.get(path).copied()
    }

    /// The inode for `path`, created if needed; updates its kind.
    pub fn intern(&mut self, path: &str, kind: Kind) -> u64 {
        if let Some(&ino) = self.by_path.get(path) {
            let n = self.by_ino.get_mut(&ino).expect("tables agree");
            if n.kind != kind {
                n.kind = kind;
                n.attr = None;
            }
            return ino;
        }
        let ino = self.next;
        self.next += 1;
        self.by_ino.insert(ino, Self::node(path.to_string(), kind));
        self.by_path.insert(path.to_string(), ino);
        ino
    }

    /// Drops `n` kernel references; forgets the node when none remain.
    pub fn forget(&mut self, ino: u64, n: u64) {
        if ino == ROOT_INO {
            return;
        }
        let remove = match self.by_ino.get_mut(&ino) {
            Some(node) => {
                node.lookups = node.lookups.saturating_sub(n);
                node.lookups == 0 && node.open == 0 && !node.local
            }
            None => false,
        };
        if remove {
            self.remove(ino);
        }
    }

    /// Removes a node entirely (it was forgotten and has no handles).
    pub fn remove(&mut self, ino: u64) {
        if let Some(node) = self.by_ino.remove(&ino)
            && self.by_path.get(&node.path) == Some(&ino)
        {
            self.by_path.remove(&node.path);
        }
    }

    /// Detaches the node at `path` (unlink, or replaced by a rename): its
    /// inode lives on for open handles but no longer has a path.
    pub fn detach(&mut self, path: &str) {
        if let Some(ino) = self.by_path.remove(path)
            && let Some(n) = self.by_ino.get_mut(&ino)
        {
            n.detached = true;
            n.local = false;
            n.attr = None;
            if n.lookups == 0 && n.open == 0 {
                self.by_ino.remove(&ino);
            }
        }
    }

    /// Moves `from` (and, for a directory, everything under it) to `to`.
    pub fn rename(&mut self, from: &str, to: &str) {
        self.detach(to);
        let sub = format!("{from}/");
        let moved: Vec<(u64, String)> = self
            .by_ino
            .iter()
            .filter(|(_, n)| !n.detached && (n.path == from || n.path.starts_with(&sub)))
            .map(|(&ino, n)| (ino, format!("{to}{}", &n.path[from.len()..])))
            .collect();
        for (_, new_path) in &moved {
            self.detach(new_path);
        }
        for (ino, _) in &moved {
            let old = self.by_ino[ino].path.clone();
            if self.by_path.get(&old) == Some(ino) {
                self.by_path.remove(&old);
            }
        }
        for (ino, new_path) in moved {
            let n = self.by_ino.get_mut(&ino).expect("listed above");
            self.by_path.insert(new_path.clone(), ino);
            n.path = new_path;
            n.attr = None;
        }
    }

    /// Local-only children of directory `dir` (created, not committed yet).
    pub fn local_children(&self, dir: &str) -> Vec<(u64, String, Kind)> {
        self.by_ino
            .iter()
            .filter(|(_, n)| n.local && !n.detached && parent_of(&n.path) == dir)
            .map(|(&ino, n)| (ino, name_of(&n.path).to_string(), n.kind))
            .collect()
    }

    /// Whether any local-only node lives under directory `dir`.
    pub fn has_local_under(&self, dir: &str) -> bool {
        let sub = format!("{dir}/");
        self.by_ino
            .values()
            .any(|n| n.local && !n.detached && (dir.is_empty() || n.path.starts_with(&sub)))
    }

    /// Number of nodes (for tests and stats).
    pub fn len(&self) -> usize {
        self.by_ino.len()
    }

    /// Whether only the root is known.
    pub fn is_empty(&self) -> bool {
        self.by_ino.len() <= 1
    }
}

/// The parent path of `path` (`""` for top-level names).
pub fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

/// The last component of `path`.
pub fn name_of(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, n)| n)
}

/// `dir/name`, or `name` at the root.
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_moves_subtree_and_detaches_target() {
        let mut t = InodeTable::new();
        let d = t.intern("d", Kind::Dir);
        let f = t.intern("d/f", Kind::File);
        let x = t.intern("e", Kind::Dir);
        t.get_mut(x).unwrap().lookups = 1;
        t.rename("d", "e");
        assert_eq!(t.ino_of("e"), Some(d));
        assert_eq!(t.ino_of("e/f"), Some(f));
        assert_eq!(t.ino_of("d/f"), None);
        assert!(t.get(x).unwrap().detached);
    }

    #[test]
    fn forget_removes_unreferenced_nodes() {
        let mut t = InodeTable::new();
        let f = t.intern("f", Kind::File);
        t.get_mut(f).unwrap().lookups = 2;
        t.forget(f, 1);
        assert!(t.get(f).is_some());
        t.forget(f, 1);
        assert!(t.get(f).is_none());
        assert_eq!(t.ino_of("f"), None);
        assert_eq!((parent_of("a/b/c"), name_of("a/b/c")), ("a/b", "c"));
        assert_eq!(join("", "x"), "x");
    }
}
