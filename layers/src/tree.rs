//! The module tree of one crate root: each module's path (`["storage",
//! "db"]`), the file that holds it and the parsed syntax, found by following
//! `mod name;` declarations from the root file the way rustc does
//! (`name.rs` or `name/mod.rs` beside the declaring module).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A module's path from the crate root; the root itself is empty.
pub type ModPath = Vec<String>;

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path} does not parse: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("module `{module}` declared in {declared_in} has no file {candidates}")]
    MissingModule {
        module: String,
        declared_in: PathBuf,
        candidates: String,
    },
}

/// One file of the crate.
pub struct SourceFile {
    /// The file's path relative to the crate's source folder, with `/`.
    pub name: String,
    /// The module the file holds.
    pub module: ModPath,
    pub syntax: syn::File,
}

/// Every module of one crate root, file and inline alike.
pub struct ModuleTree {
    pub files: Vec<SourceFile>,
    /// Module path to the index of the file that holds it (inline modules
    /// map to the file they are written in).
    pub modules: BTreeMap<ModPath, usize>,
}

impl ModuleTree {
    /// Reads the crate whose root file is `src_dir/root_file` (`lib.rs` or
    /// `main.rs`).
    pub fn load(src_dir: &Path, root_file: &str) -> Result<Self, TreeError> {
        let mut tree = ModuleTree {
            files: Vec::new(),
            modules: BTreeMap::new(),
        };
        tree.load_file(src_dir, Path::new(root_file), Vec::new(), src_dir)?;
        Ok(tree)
    }

    /// The file that holds `module`, when it is a module of this crate.
    pub fn file_of(&self, module: &[String]) -> Option<usize> {
        self.modules.get(module).copied()
    }

    fn load_file(
        &mut self,
        src_dir: &Path,
        relative: &Path,
        module: ModPath,
        child_dir: &Path,
    ) -> Result<(), TreeError> {
        let path = src_dir.join(relative);
        let text = std::fs::read_to_string(&path).map_err(|e| TreeError::Read {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let syntax = syn::parse_file(&text).map_err(|e| TreeError::Parse {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let index = self.files.len();
        let name = relative.to_string_lossy().replace('\\', "/");
        let items = syntax.items.clone();
        self.files.push(SourceFile {
            name,
            module: module.clone(),
            syntax,
        });
        self.modules.insert(module.clone(), index);
        self.load_items(src_dir, &items, &module, child_dir, index, &path)
    }

    fn load_items(
        &mut self,
        src_dir: &Path,
        items: &[syn::Item],
        module: &ModPath,
        child_dir: &Path,
        file_index: usize,
        file_path: &Path,
    ) -> Result<(), TreeError> {
        for item in items {
            let syn::Item::Mod(declared) = item else { continue };
            if crate::refs::is_test_only(&declared.attrs) {
                continue;
            }
            let name = declared.ident.to_string();
            let mut child = module.clone();
            child.push(name.clone());
            match &declared.content {
                Some((_, inline)) => {
                    self.modules.insert(child.clone(), file_index);
                    let dir = child_dir.join(&name);
                    self.load_items(src_dir, inline, &child, &dir, file_index, file_path)?;
                }
                None => {
                    let flat = child_dir.join(format!("{name}.rs"));
                    let nested = child_dir.join(&name).join("mod.rs");
                    let (found, dir) = if flat.exists() {
                        (flat, child_dir.join(&name))
                    } else if nested.exists() {
                        (nested, child_dir.join(&name))
                    } else {
                        return Err(TreeError::MissingModule {
                            module: child.join("::"),
                            declared_in: file_path.to_path_buf(),
                            candidates: format!("{} or {}", flat.display(), nested.display()),
                        });
                    };
                    let relative = found.strip_prefix(src_dir).unwrap_or(&found).to_path_buf();
                    self.load_file(src_dir, &relative, child, &dir)?;
                }
            }
        }
        Ok(())
    }
}
