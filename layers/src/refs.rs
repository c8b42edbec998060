//! The crate-internal references of each file, resolved to the file that
//! defines what they name. A `use` of an item, or a path in code that starts
//! at `crate`, `self`, `super`, a child module or a name a `use` brought in,
//! is a reference; a `pub use` is a re-export, followed rather than counted,
//! so a folder's `mod.rs` facade does not stand between a caller and the
//! file it really depends on. Items under `#[cfg(test)]` are skipped: the
//! layering is about what ships. Paths inside macro invocations are not
//! seen (their tokens are not parsed).

use std::collections::{BTreeMap, BTreeSet};

use syn::visit::Visit;

use crate::tree::{ModPath, ModuleTree};

/// How many re-exports a path is followed through before it is taken as is.
const MAX_REEXPORT_HOPS: usize = 8;

/// One file naming something another file defines.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    pub from: usize,
    pub to: usize,
    /// The reference as written, resolved from the crate root.
    pub path: String,
}

/// What one module defines and what its `use` items bring in.
#[derive(Default)]
struct Scope {
    /// Names of the items the module itself defines.
    defined: BTreeSet<String>,
    /// Every private import, by the name it binds (a name bound twice, in
    /// two functions, keeps both).
    imports: Vec<(String, ModPath)>,
    /// The last path bound to each name, for paths written through it.
    names: BTreeMap<String, ModPath>,
    reexports: BTreeMap<String, ModPath>,
    /// `use x::*` targets, resolved.
    glob_imports: Vec<ModPath>,
    /// `pub use x::*` targets, resolved.
    glob_reexports: Vec<ModPath>,
}

impl Scope {
    /// Records what one `use` item written in `module` brings in.
    fn bind(&mut self, tree: &ModuleTree, module: &ModPath, used: &syn::ItemUse, reexport: bool) {
        let mut flat = Vec::new();
        flatten_use(&used.tree, Vec::new(), &mut flat);
        for (written, alias) in flat {
            let Some(absolute) = anchor(tree, module, &written).or_else(|| self.through_import(&written)) else {
                continue;
            };
            match (alias, reexport) {
                (None, true) => self.glob_reexports.push(absolute),
                (None, false) => self.glob_imports.push(absolute),
                (Some(name), true) => {
                    self.reexports.insert(name, absolute);
                }
                (Some(name), false) => {
                    self.imports.push((name.clone(), absolute.clone()));
                    self.names.insert(name, absolute);
                }
            }
        }
    }

    /// A path that starts at a name an earlier `use` bound
    /// (`use crate::records; use records::Service;`).
    fn through_import(&self, written: &[String]) -> Option<ModPath> {
        let first = written.first()?;
        let bound = self.names.get(first).or_else(|| self.reexports.get(first))?;
        let mut absolute = bound.clone();
        absolute.extend(written[1..].iter().cloned());
        Some(absolute)
    }
}

/// Every resolved reference between two different files of the tree.
pub fn edges(tree: &ModuleTree) -> Vec<Edge> {
    let mut scopes: BTreeMap<ModPath, Scope> = BTreeMap::new();
    let mut bodies: Vec<(ModPath, usize, Vec<syn::Item>)> = Vec::new();
    for (index, file) in tree.files.iter().enumerate() {
        collect_modules(tree, &file.module, index, &file.syntax.items, &mut scopes, &mut bodies);
    }
    let resolver = Resolver { tree, scopes: &scopes };
    let mut found = BTreeSet::new();
    for (module, file, items) in &bodies {
        let scope = &scopes[module];
        let mut edge_to = |target: &ModPath| {
            if let Some(to) = resolver.file_defining(target) {
                found.insert(Edge {
                    from: *file,
                    to,
                    path: format!("crate::{}", target.join("::")),
                });
            }
        };
        for (_, target) in &scope.imports {
            // A `use` of a module is only an alias: the paths through it count.
            if tree.file_of(target).is_none() {
                edge_to(target);
            }
        }
        scope.glob_imports.iter().for_each(&mut edge_to);
        // A re-export of the module's own children is a facade, followed by
        // whoever names it; one from elsewhere is this file's import.
        let from_elsewhere = |target: &&ModPath| !target.starts_with(module);
        scope.reexports.values().filter(from_elsewhere).for_each(&mut edge_to);
        scope
            .glob_reexports
            .iter()
            .filter(from_elsewhere)
            .for_each(&mut edge_to);
        for item in items {
            if matches!(item, syn::Item::Use(_) | syn::Item::Mod(_)) {
                continue;
            }
            let mut paths = PathCollector::default();
            paths.visit_item(item);
            for written in paths.paths {
                let Some(absolute) = resolver.absolute(module, &written, scope) else {
                    continue;
                };
                if let Some(to) = resolver.file_defining(&absolute) {
                    found.insert(Edge {
                        from: *file,
                        to,
                        path: format!("crate::{}", absolute.join("::")),
                    });
                }
            }
        }
    }
    found.into_iter().filter(|e| e.from != e.to).collect()
}

/// Records each module's scope and keeps its non-module items for the second
/// pass, descending into inline modules.
fn collect_modules(
    tree: &ModuleTree,
    module: &ModPath,
    file: usize,
    items: &[syn::Item],
    scopes: &mut BTreeMap<ModPath, Scope>,
    bodies: &mut Vec<(ModPath, usize, Vec<syn::Item>)>,
) {
    let mut scope = Scope::default();
    let mut kept = Vec::new();
    for item in items {
        if is_test_only(item_attrs(item)) {
            continue;
        }
        if let Some(name) = item_name(item) {
            scope.defined.insert(name);
        }
        match item {
            syn::Item::Mod(inline) => {
                if let Some((_, inner)) = &inline.content {
                    let mut child = module.clone();
                    child.push(inline.ident.to_string());
                    collect_modules(tree, &child, file, inner, scopes, bodies);
                }
            }
            syn::Item::Use(used) => {
                let reexport = !matches!(used.vis, syn::Visibility::Inherited);
                scope.bind(tree, module, used, reexport);
            }
            other => kept.push(other.clone()),
        }
    }
    // Functions' own `use` items count as the module's.
    for item in &kept {
        let mut nested = NestedUses::default();
        nested.visit_item(item);
        for used in &nested.uses {
            scope.bind(tree, module, used, false);
        }
    }
    scopes.insert(module.clone(), scope);
    bodies.push((module.clone(), file, kept));
}

/// Turns a path written in `module` into one from the crate root, when it
/// starts inside the crate (`crate`, `self`, `super` or a child module).
fn anchor(tree: &ModuleTree, module: &ModPath, written: &[String]) -> Option<ModPath> {
    let first = written.first()?;
    let mut base = match first.as_str() {
        "crate" => Vec::new(),
        "self" | "super" => module.clone(),
        _ => {
            let mut child = module.clone();
            child.push(first.clone());
            // Anything else is an outside crate or a local name.
            tree.file_of(&child)?;
            module.clone()
        }
    };
    let mut rest = match first.as_str() {
        "crate" | "self" => &written[1..],
        _ => written,
    };
    while rest.first().map(String::as_str) == Some("super") {
        base.pop()?;
        rest = &rest[1..];
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

struct Resolver<'a> {
    tree: &'a ModuleTree,
    scopes: &'a BTreeMap<ModPath, Scope>,
}

impl Resolver<'_> {
    /// A path written in code, from the crate root.
    fn absolute(&self, module: &ModPath, written: &[String], scope: &Scope) -> Option<ModPath> {
        if let Some(absolute) = anchor(self.tree, module, written) {
            return Some(absolute);
        }
        scope.through_import(written)
    }

    /// The file that defines what `path` names, following re-exports
    /// (named and glob).
    fn file_defining(&self, path: &[String]) -> Option<usize> {
        let mut path = path.to_vec();
        for _ in 0..MAX_REEXPORT_HOPS {
            let depth = (0..=path.len())
                .rev()
                .find(|&k| self.tree.file_of(&path[..k]).is_some())?;
            let file = self.tree.file_of(&path[..depth])?;
            let Some(name) = path.get(depth) else { return Some(file) };
            let scope = self.scopes.get(&path[..depth])?;
            if scope.defined.contains(name) {
                return Some(file);
            }
            let through_glob = || {
                scope.glob_reexports.iter().find(|glob| {
                    self.scopes
                        .get(*glob)
                        .is_some_and(|s| s.defined.contains(name) || s.reexports.contains_key(name))
                })
            };
            let next = match (scope.reexports.get(name), through_glob()) {
                (Some(target), _) => target.iter().chain(&path[depth + 1..]).cloned().collect(),
                (None, Some(glob)) => glob.iter().chain(&path[depth..]).cloned().collect(),
                (None, None) => return Some(file),
            };
            path = next;
        }
        panic!("more than {MAX_REEXPORT_HOPS} re-exports lead to {}", path.join("::"))
    }
}

/// `use a::{b, c::d as e, f::*}` as (path, name bound): `[a, b]` binds `b`,
/// a glob binds nothing.
fn flatten_use(tree: &syn::UseTree, prefix: Vec<String>, out: &mut Vec<(Vec<String>, Option<String>)>) {
    match tree {
        syn::UseTree::Path(p) => {
            let mut next = prefix;
            next.push(p.ident.to_string());
            flatten_use(&p.tree, next, out);
        }
        syn::UseTree::Name(n) => {
            let name = n.ident.to_string();
            let mut path = prefix;
            if name == "self" {
                let bound = path.last().cloned();
                out.push((path, bound));
            } else {
                path.push(name.clone());
                out.push((path, Some(name)));
            }
        }
        syn::UseTree::Rename(r) => {
            let mut path = prefix;
            let name = r.ident.to_string();
            if name != "self" {
                path.push(name);
            }
            out.push((path, Some(r.rename.to_string())));
        }
        syn::UseTree::Glob(_) => out.push((prefix, None)),
        syn::UseTree::Group(g) => {
            for inner in &g.items {
                flatten_use(inner, prefix.clone(), out);
            }
        }
    }
}

/// The name an item defines in its module, if any.
fn item_name(item: &syn::Item) -> Option<String> {
    let ident = match item {
        syn::Item::Const(i) => &i.ident,
        syn::Item::Enum(i) => &i.ident,
        syn::Item::Fn(i) => &i.sig.ident,
        syn::Item::Mod(i) => &i.ident,
        syn::Item::Static(i) => &i.ident,
        syn::Item::Struct(i) => &i.ident,
        syn::Item::Trait(i) => &i.ident,
        syn::Item::TraitAlias(i) => &i.ident,
        syn::Item::Type(i) => &i.ident,
        syn::Item::Union(i) => &i.ident,
        syn::Item::Macro(i) => i.ident.as_ref()?,
        _ => return None,
    };
    Some(ident.to_string())
}

fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    match item {
        syn::Item::Const(i) => &i.attrs,
        syn::Item::Enum(i) => &i.attrs,
        syn::Item::ExternCrate(i) => &i.attrs,
        syn::Item::Fn(i) => &i.attrs,
        syn::Item::ForeignMod(i) => &i.attrs,
        syn::Item::Impl(i) => &i.attrs,
        syn::Item::Macro(i) => &i.attrs,
        syn::Item::Mod(i) => &i.attrs,
        syn::Item::Static(i) => &i.attrs,
        syn::Item::Struct(i) => &i.attrs,
        syn::Item::Trait(i) => &i.attrs,
        syn::Item::TraitAlias(i) => &i.attrs,
        syn::Item::Type(i) => &i.attrs,
        syn::Item::Union(i) => &i.attrs,
        syn::Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

/// `#[cfg(test)]`, alone or as one condition of `all(...)`: code that is
/// compiled only for tests. `any(test, ...)`, `not(test)` and features (even
/// one named `test-...`) may ship.
pub(crate) fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    use proc_macro2::TokenTree;
    fn is_test(tokens: &[TokenTree]) -> bool {
        matches!(tokens, [TokenTree::Ident(ident)] if ident == "test")
    }
    fn conditions(stream: proc_macro2::TokenStream) -> Vec<Vec<TokenTree>> {
        let mut all = vec![Vec::new()];
        for token in stream {
            match &token {
                TokenTree::Punct(p) if p.as_char() == ',' => all.push(Vec::new()),
                _ => all.last_mut().expect("never empty").push(token),
            }
        }
        all
    }
    attrs.iter().any(|attr| {
        let Ok(list) = attr.meta.require_list() else {
            return false;
        };
        if !attr.path().is_ident("cfg") {
            return false;
        }
        let tokens: Vec<TokenTree> = list.tokens.clone().into_iter().collect();
        match tokens.as_slice() {
            [TokenTree::Ident(all), TokenTree::Group(group)] if all == "all" => {
                conditions(group.stream()).iter().any(|c| is_test(c))
            }
            other => is_test(other),
        }
    })
}

#[derive(Default)]
struct PathCollector {
    paths: Vec<Vec<String>>,
}

impl<'ast> Visit<'ast> for PathCollector {
    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.leading_colon.is_none() {
            self.paths
                .push(path.segments.iter().map(|s| s.ident.to_string()).collect());
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_item_use(&mut self, _: &'ast syn::ItemUse) {}

    fn visit_item_mod(&mut self, _: &'ast syn::ItemMod) {}

    // `pub(crate)` and `pub(super)` name modules but import nothing.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        if !is_test_only(&item.attrs) {
            syn::visit::visit_item_fn(self, item);
        }
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        if !is_test_only(&item.attrs) {
            syn::visit::visit_impl_item_fn(self, item);
        }
    }
}

#[derive(Default)]
struct NestedUses {
    uses: Vec<syn::ItemUse>,
}

impl<'ast> Visit<'ast> for NestedUses {
    fn visit_item_use(&mut self, used: &'ast syn::ItemUse) {
        self.uses.push(used.clone());
    }

    fn visit_item_mod(&mut self, _: &'ast syn::ItemMod) {}
}
