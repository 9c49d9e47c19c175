//! The layering check (ARCHITECTURE.md: "no file imports one from a layer above it or a sibling
//! in its own layer (CI checks "no import cycle")"), and a size limit on source files.
//!
//! For each crate of the workspace it reads every `.rs` file under `src/` (binaries under
//! `src/bin/` are crates of their own and are left out; so are `tests/`), extracts the
//! intra-crate module paths the code names, resolves each to the file of the module it names,
//! and fails if the file-level dependency graph has a cycle. A cycle is reported as its strongly
//! connected component: the files, every edge between them with the paths behind it (and their
//! lines), and the elementary cycles through them.
//!
//! What makes an edge from file F to file G:
//! * a `use` declaration whose path starts with `crate::`, `self::`, `super::` or the name of a
//!   child module of the current module (grouped trees `use crate::{a::X, b::{Y, Z}}` expanded);
//! * a path in code starting the same way, e.g. `crate::a::b::f(..)` or `super::X`.
//!
//! A path resolves to the file of the longest prefix that is a module with a file
//! (`src/a/b.rs` or `src/a/b/mod.rs`; `crate::a::b::C` with only `src/a.rs` is `src/a.rs`).
//! When the rest names an item that module re-exports (`pub use a::Name` in lib.rs, `pub use
//! self::x::*` in a mod.rs, any top-level `use`), the path follows the re-export to the module
//! that defines the name. Not edges: `mod x;` (a parent declaring a child is not an import),
//! `pub use` lines of a module root (lib.rs, main.rs, mod.rs, or `a.rs` beside a directory
//! `a/`: re-exports are the facade, they point to the original only when resolving others'
//! paths), paths of other crates, comments and doc links, strings, `pub(in path)`, and edges
//! from a file to itself (`#[cfg(test)] mod tests { use super::*; }`).
//!
//! For `actors/src` it also checks the layer order of `actors/src/lib.rs`'s table
//! ([`ACTORS_LAYERS`]: cores, context, routing, actors, user handles, facade; lib.rs exempt):
//! it fails, naming both files and the paths behind the edge, when a file imports from a file
//! of a higher layer, and when a file is in no layer. Files of one layer may import each other;
//! the cycle check keeps that acyclic.
//!
//! Also fails if any `.rs` file of a workspace member (src/, tests/, binaries, examples) is over
//! [`MAX_LINES`] lines.
//!
//! Print the graph: `LAYERS_GRAPH=1 cargo test -p tipc-integration --test layers --
//! --nocapture --test-threads=1` lists every edge with its paths; `LAYERS_GRAPH=dot` prints
//! Graphviz (`... 2>&1 | sed -n '/^digraph/,/^}/p' | dot -Tsvg > layers.svg`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Longest source file allowed, in lines.
const MAX_LINES: usize = 1600;

/// The crates whose `src/` must be free of import cycles.
const CHECKED: [&str; 5] = ["transport", "actors", "runtime", "macros", "integration"];

// ---------------------------------------------------------------------------------------------
// Lexer: identifiers, `::`, punctuation; comments, strings, chars, numbers and lifetimes skipped
// (literals leave a `Lit` so that tokens on either side of one are not adjacent).

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    PathSep,
    Punct(char),
    Lit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    tok: Tok,
    line: usize,
}

fn ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn ident_continue(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Skips a string body from just after its opening `"` to just after the closing one.
fn skip_string(c: &[char], mut i: usize, line: &mut usize) -> usize {
    while i < c.len() {
        match c[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            ch => {
                if ch == '\n' {
                    *line += 1;
                }
                i += 1;
            }
        }
    }
    i
}

/// Skips a raw string from its first `#` or `"` (after `r`) to its end; `None` if it is not one.
fn skip_raw_string(c: &[char], mut i: usize, line: &mut usize) -> Option<usize> {
    let mut hashes = 0;
    while c.get(i) == Some(&'#') {
        hashes += 1;
        i += 1;
    }
    if c.get(i) != Some(&'"') {
        return None;
    }
    i += 1;
    while i < c.len() {
        if c[i] == '"' && (0..hashes).all(|k| c.get(i + 1 + k) == Some(&'#')) {
            return Some(i + 1 + hashes);
        }
        if c[i] == '\n' {
            *line += 1;
        }
        i += 1;
    }
    Some(i)
}

/// At a `'`: skips a char literal (returns the index after it) or a lifetime or label.
fn skip_quote(c: &[char], i: usize) -> usize {
    if c.get(i + 1) == Some(&'\\') {
        let mut j = i + 3;
        while j < c.len() && c[j] != '\'' {
            j += 1;
        }
        return j + 1;
    }
    if c.get(i + 2) == Some(&'\'') {
        return i + 3;
    }
    let mut j = i + 1;
    while j < c.len() && ident_continue(c[j]) {
        j += 1;
    }
    j
}

fn lex(src: &str) -> Vec<Token> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < c.len() {
        let ch = c[i];
        let at = line;
        let mut push = |tok| out.push(Token { tok, line: at });
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && c.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if ch == '"' {
            i = skip_string(&c, i + 1, &mut line);
            push(Tok::Lit);
        } else if ch == '\'' {
            let j = skip_quote(&c, i);
            if c.get(j - 1) == Some(&'\'') && j > i + 1 {
                push(Tok::Lit);
            }
            i = j;
        } else if ident_start(ch) {
            let s = i;
            while i < c.len() && ident_continue(c[i]) {
                i += 1;
            }
            let word: String = c[s..i].iter().collect();
            let next = c.get(i).copied();
            if matches!(word.as_str(), "r" | "br" | "cr") && matches!(next, Some('"' | '#')) {
                if let Some(j) = skip_raw_string(&c, i, &mut line) {
                    i = j;
                    push(Tok::Lit);
                    continue;
                }
                if word == "r" && c.get(i + 1).is_some_and(|&n| ident_start(n)) {
                    // A raw identifier: `r#type`.
                    let s = i + 1;
                    i = s;
                    while i < c.len() && ident_continue(c[i]) {
                        i += 1;
                    }
                    push(Tok::Ident(c[s..i].iter().collect()));
                    continue;
                }
                push(Tok::Ident(word));
            } else if matches!(word.as_str(), "b" | "c") && next == Some('"') {
                i = skip_string(&c, i + 1, &mut line);
                push(Tok::Lit);
            } else if word == "b" && next == Some('\'') {
                i = skip_quote(&c, i);
                push(Tok::Lit);
            } else {
                push(Tok::Ident(word));
            }
        } else if ch.is_ascii_digit() {
            while i < c.len() && ident_continue(c[i]) {
                i += 1;
            }
            push(Tok::Lit);
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            push(Tok::PathSep);
            i += 2;
        } else {
            push(Tok::Punct(ch));
            i += 1;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Parser: the paths a file names (use trees expanded, paths in code), the inline modules they
// sit in, and the names the file defines at its top level.

/// How a path was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefKind {
    /// In a `use` declaration (`public`: with any `pub` visibility, a re-export).
    Use { public: bool },
    /// In code (expressions, types, patterns, attributes' token trees).
    Code,
}

/// One path named by a file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ref {
    /// The inline modules (`mod x { .. }`) it sits in, outermost first.
    scope: Vec<String>,
    /// Its segments as written (a leading `::` is the segment `"::"`; a trailing `self` of a
    /// use group is dropped).
    segs: Vec<String>,
    /// `use a::*`.
    glob: bool,
    /// `use a::B as C`: `C`.
    alias: Option<String>,
    kind: RefKind,
    line: usize,
}

impl Ref {
    /// The path as text, for reports.
    fn text(&self) -> String {
        let mut s = self.segs.join("::").replacen("::::", "::", 1);
        if self.glob {
            s.push_str("::*");
        }
        s
    }

    /// The name a use declaration brings into scope (its alias, or its last segment).
    fn bound_name(&self) -> Option<&str> {
        match &self.alias {
            Some(a) if a != "_" => Some(a),
            Some(_) => None,
            None => self.segs.last().map(String::as_str),
        }
    }
}

/// What one file names and defines.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Parsed {
    refs: Vec<Ref>,
    /// Items defined at the file's top level (structs, fns, consts, modules, ...).
    items: BTreeSet<String>,
    /// Those of them with a `pub` visibility (what a glob re-export passes on).
    pub_items: BTreeSet<String>,
}

const ITEM_KEYWORDS: [&str; 9] = [
    "struct", "enum", "fn", "trait", "type", "const", "static", "union", "mod",
];

struct Parser {
    t: Vec<Token>,
    i: usize,
}

impl Parser {
    fn tok(&self, k: usize) -> Option<&Tok> {
        self.t.get(self.i + k).map(|t| &t.tok)
    }

    fn ident(&self, k: usize) -> Option<&str> {
        match self.tok(k) {
            Some(Tok::Ident(s)) => Some(s),
            _ => None,
        }
    }

    fn is(&self, k: usize, tok: &Tok) -> bool {
        self.tok(k) == Some(tok)
    }

    fn line(&self) -> usize {
        self.t.get(self.i).map_or(0, |t| t.line)
    }

    /// Skips a balanced `( .. )` starting at the current `(`.
    fn skip_parens(&mut self) {
        let mut depth = 0;
        while let Some(t) = self.tok(0).cloned() {
            self.i += 1;
            match t {
                Tok::Punct('(') => depth += 1,
                Tok::Punct(')') => {
                    depth -= 1;
                    if depth == 0 {
                        return;
                    }
                }
                _ => {}
            }
        }
    }

    /// One use tree (after `use` or inside a group) under `prefix`: `(segments, glob, alias)`.
    fn use_tree(&mut self, prefix: &[String]) -> Vec<(Vec<String>, bool, Option<String>)> {
        let mut segs = prefix.to_vec();
        if self.is(0, &Tok::PathSep) {
            self.i += 1;
            if segs.is_empty() {
                segs.push("::".into());
            }
        }
        loop {
            match self.tok(0).cloned() {
                Some(Tok::Ident(s)) => {
                    segs.push(s);
                    self.i += 1;
                    if self.is(0, &Tok::PathSep) {
                        self.i += 1;
                        continue;
                    }
                    break;
                }
                Some(Tok::Punct('*')) => {
                    self.i += 1;
                    return vec![(segs, true, None)];
                }
                Some(Tok::Punct('{')) => {
                    self.i += 1;
                    let mut out = Vec::new();
                    loop {
                        match self.tok(0) {
                            None => break,
                            Some(Tok::Punct('}')) => {
                                self.i += 1;
                                break;
                            }
                            Some(Tok::Punct(',')) => self.i += 1,
                            Some(_) => {
                                let before = self.i;
                                out.extend(self.use_tree(&segs));
                                if self.i == before {
                                    self.i += 1;
                                }
                            }
                        }
                    }
                    return out;
                }
                _ => break,
            }
        }
        let mut alias = None;
        if self.ident(0) == Some("as") {
            alias = self.ident(1).map(str::to_owned);
            self.i += 2;
        }
        if segs.len() > 1 && segs.last().is_some_and(|s| s == "self") {
            segs.pop();
        }
        vec![(segs, false, alias)]
    }
}

fn parse(src: &str) -> Parsed {
    let mut p = Parser { t: lex(src), i: 0 };
    let mut out = Parsed::default();
    let mut depth = 0usize;
    // Inline modules we are in: (name, brace depth of its body).
    let mut scope: Vec<(String, usize)> = Vec::new();
    // A `pub` seen since the last item at the top level.
    let mut vis_pub = false;
    let names = |scope: &[(String, usize)]| scope.iter().map(|(n, _)| n.clone()).collect();
    while let Some(tok) = p.tok(0).cloned() {
        let top = depth == 0 && scope.is_empty();
        match tok {
            Tok::Punct('{') => {
                depth += 1;
                vis_pub = false;
                p.i += 1;
            }
            Tok::Punct(';') => {
                vis_pub = false;
                p.i += 1;
            }
            Tok::Punct('}') => {
                depth = depth.saturating_sub(1);
                vis_pub = false;
                while scope.last().is_some_and(|(_, d)| *d > depth) {
                    scope.pop();
                }
                p.i += 1;
            }
            Tok::Ident(w) if w == "pub" || w == "use" => {
                let mut public = false;
                if w == "pub" {
                    public = true;
                    vis_pub |= top;
                    p.i += 1;
                    if p.is(0, &Tok::Punct('(')) {
                        // `pub(crate)`, `pub(in crate::a)`: a visibility, not a dependency.
                        p.skip_parens();
                    }
                    if p.ident(0) != Some("use") {
                        continue;
                    }
                }
                let line = p.line();
                p.i += 1;
                for (segs, glob, alias) in p.use_tree(&[]) {
                    out.refs.push(Ref {
                        scope: names(&scope),
                        segs,
                        glob,
                        alias,
                        kind: RefKind::Use { public },
                        line,
                    });
                }
            }
            Tok::Ident(w) if w == "mod" && p.ident(1).is_some() => {
                let name = p.ident(1).unwrap_or_default().to_owned();
                if top {
                    out.items.insert(name.clone());
                    if vis_pub {
                        out.pub_items.insert(name.clone());
                    }
                }
                vis_pub = false;
                if p.is(2, &Tok::Punct('{')) {
                    depth += 1;
                    scope.push((name, depth));
                    p.i += 3;
                } else {
                    p.i += 2;
                }
            }
            Tok::Ident(w) if top && ITEM_KEYWORDS.contains(&w.as_str()) => {
                // `const fn f`: the name comes with `fn`.
                if let Some(name) = p.ident(1).filter(|n| *n != "fn") {
                    if name != "_" {
                        out.items.insert(name.to_owned());
                        if vis_pub {
                            out.pub_items.insert(name.to_owned());
                        }
                    }
                    vis_pub = false;
                }
                p.i += 1;
            }
            Tok::Ident(w) if top && w == "macro_rules" && p.is(1, &Tok::Punct('!')) => {
                if let Some(name) = p.ident(2) {
                    out.items.insert(name.to_owned());
                }
                p.i += 1;
            }
            Tok::Ident(first)
                if p.is(1, &Tok::PathSep) && (p.i == 0 || !p.t[p.i - 1].tok.eq(&Tok::PathSep)) =>
            {
                let line = p.line();
                let mut segs = vec![first];
                p.i += 1;
                while p.is(0, &Tok::PathSep) {
                    match p.ident(1) {
                        Some(s) => {
                            segs.push(s.to_owned());
                            p.i += 2;
                        }
                        None => break,
                    }
                }
                out.refs.push(Ref {
                    scope: names(&scope),
                    segs,
                    glob: false,
                    alias: None,
                    kind: RefKind::Code,
                    line,
                });
            }
            _ => p.i += 1,
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// A crate: its module files, path resolution, the file graph and its cycles.

type ModPath = Vec<String>;

#[derive(Debug)]
struct SrcFile {
    /// Path shown in reports (`runtime/src/node.rs`).
    shown: String,
    module: ModPath,
    /// lib.rs, main.rs, mod.rs, or `a.rs` beside a directory of submodules `a/`.
    root: bool,
    parsed: Parsed,
}

/// Paths behind one edge, each with the lines it appears on.
type EdgeNames = BTreeMap<String, BTreeSet<usize>>;

#[derive(Debug)]
struct Crate {
    files: Vec<SrcFile>,
    by_module: BTreeMap<ModPath, usize>,
}

/// The module a file under `src/` holds: `lib.rs` -> [], `a/b.rs` and `a/b/mod.rs` -> [a, b].
fn module_of(rel: &str) -> (ModPath, bool) {
    let mut m: ModPath = rel
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_owned)
        .collect();
    let named_root = match m.last().map(String::as_str) {
        Some("mod") => true,
        Some("lib" | "main") => m.len() == 1,
        _ => false,
    };
    if named_root {
        m.pop();
    }
    (m, named_root)
}

impl Crate {
    /// A crate from `(path under src/, text)` pairs; `prefix` goes before each path in reports.
    fn from_sources(prefix: &str, sources: &[(String, String)]) -> Crate {
        let mut files: Vec<SrcFile> = sources
            .iter()
            .map(|(rel, text)| {
                let (module, root) = module_of(rel);
                SrcFile {
                    shown: format!("{prefix}{rel}"),
                    module,
                    root,
                    parsed: parse(text),
                }
            })
            .collect();
        files.sort_by(|a, b| a.shown.cmp(&b.shown));
        let by_module: BTreeMap<ModPath, usize> = files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.module.clone(), i))
            .collect();
        let parents: BTreeSet<ModPath> = files
            .iter()
            .filter(|f| !f.module.is_empty())
            .map(|f| f.module[..f.module.len() - 1].to_vec())
            .collect();
        for f in &mut files {
            f.root |= parents.contains(&f.module);
        }
        Crate { files, by_module }
    }

    /// Reads every `.rs` file under `dir/src`, except `src/bin/`.
    fn load(workspace: &Path, name: &str) -> Crate {
        let src = workspace.join(name).join("src");
        let mut sources = Vec::new();
        for path in rs_files(&src) {
            let rel = path
                .strip_prefix(&src)
                .expect("under src")
                .to_string_lossy()
                .replace('\\', "/");
            if rel.starts_with("bin/") {
                continue;
            }
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            sources.push((rel, text));
        }
        Crate::from_sources(&format!("{name}/src/"), &sources)
    }

    /// The module path a reference names, made absolute; `None` for other crates' paths.
    fn absolute(&self, file: usize, r: &Ref) -> Option<ModPath> {
        let f = &self.files[file];
        let cur: ModPath = f.module.iter().chain(&r.scope).cloned().collect();
        let (first, rest) = r.segs.split_first()?;
        match first.as_str() {
            "crate" => Some(rest.to_vec()),
            "self" => Some([cur.as_slice(), rest].concat()),
            "super" => {
                let mut base = cur;
                base.pop()?;
                let mut rest = rest;
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop()?;
                    rest = &rest[1..];
                }
                Some([base.as_slice(), rest].concat())
            }
            _ => {
                // `use child::X` / `child::f()`: a child module of the current module.
                let mut child = cur.clone();
                child.push(first.clone());
                self.by_module
                    .contains_key(&child)
                    .then(|| [cur.as_slice(), &r.segs].concat())
            }
        }
    }

    /// The file of the longest prefix of `path` that is a module with a file, and its length.
    fn longest(&self, path: &[String]) -> Option<(usize, usize)> {
        (0..=path.len())
            .rev()
            .find_map(|l| self.by_module.get(&path[..l]).map(|&f| (f, l)))
    }

    /// The `use` declarations at a file's top level (the names it provides to other modules).
    fn top_uses(&self, file: usize) -> impl Iterator<Item = &Ref> {
        self.files[file]
            .parsed
            .refs
            .iter()
            .filter(|r| r.scope.is_empty() && matches!(r.kind, RefKind::Use { .. }))
    }

    /// Whether a glob import of module file `file` brings `name`: a `pub` item (or module) of
    /// it, or a name it re-exports with `pub use`.
    fn glob_provides(&self, file: usize, name: &str) -> bool {
        self.files[file].parsed.pub_items.contains(name)
            || self.top_uses(file).any(|r| {
                !r.glob && r.kind == RefKind::Use { public: true } && r.bound_name() == Some(name)
            })
    }

    /// The file defining what absolute path `path` names, through re-exports.
    fn resolve(&self, path: &[String], depth: usize) -> Option<usize> {
        let (file, l) = self.longest(path)?;
        if l == path.len() || depth > 16 {
            return Some(file);
        }
        let name = path[l].as_str();
        if self.files[file].parsed.items.contains(name) {
            return Some(file);
        }
        let tail = &path[l + 1..];
        if let Some(r) = self
            .top_uses(file)
            .find(|r| !r.glob && r.bound_name() == Some(name))
        {
            // Imported from another crate: no file of this one.
            let target = self.absolute(file, r)?;
            return self.resolve(&[target.as_slice(), tail].concat(), depth + 1);
        }
        for r in self.top_uses(file).filter(|r| r.glob) {
            let Some(module) = self.absolute(file, r) else {
                continue;
            };
            if let Some((g, gl)) = self.longest(&module) {
                if gl == module.len() && g != file && self.glob_provides(g, name) {
                    return self.resolve(&[module.as_slice(), &path[l..]].concat(), depth + 1);
                }
            }
        }
        Some(file)
    }

    /// The file graph: (from, to) -> the paths behind the edge.
    fn edges(&self) -> BTreeMap<(usize, usize), EdgeNames> {
        let mut edges: BTreeMap<(usize, usize), EdgeNames> = BTreeMap::new();
        for (i, f) in self.files.iter().enumerate() {
            for r in &f.parsed.refs {
                let reexport = r.kind == RefKind::Use { public: true } && r.scope.is_empty();
                if reexport && f.root {
                    continue;
                }
                let Some(to) = self.absolute(i, r).and_then(|abs| self.resolve(&abs, 0)) else {
                    continue;
                };
                if to != i {
                    edges
                        .entry((i, to))
                        .or_default()
                        .entry(r.text())
                        .or_default()
                        .insert(r.line);
                }
            }
        }
        edges
    }

    /// Strongly connected components with more than one file (Tarjan), each sorted.
    fn cycles(&self, edges: &BTreeMap<(usize, usize), EdgeNames>) -> Vec<Vec<usize>> {
        struct Tarjan<'a> {
            succ: &'a [Vec<usize>],
            index: Vec<Option<usize>>,
            low: Vec<usize>,
            on_stack: Vec<bool>,
            stack: Vec<usize>,
            next: usize,
            out: Vec<Vec<usize>>,
        }
        impl Tarjan<'_> {
            fn visit(&mut self, v: usize) {
                self.index[v] = Some(self.next);
                self.low[v] = self.next;
                self.next += 1;
                self.stack.push(v);
                self.on_stack[v] = true;
                for &w in &self.succ[v] {
                    match self.index[w] {
                        None => {
                            self.visit(w);
                            self.low[v] = self.low[v].min(self.low[w]);
                        }
                        Some(iw) if self.on_stack[w] => self.low[v] = self.low[v].min(iw),
                        Some(_) => {}
                    }
                }
                if Some(self.low[v]) == self.index[v] {
                    let mut comp = Vec::new();
                    while let Some(w) = self.stack.pop() {
                        self.on_stack[w] = false;
                        comp.push(w);
                        if w == v {
                            break;
                        }
                    }
                    if comp.len() > 1 {
                        comp.sort_unstable();
                        self.out.push(comp);
                    }
                }
            }
        }
        let n = self.files.len();
        let succ = successors(n, edges);
        let mut t = Tarjan {
            succ: &succ,
            index: vec![None; n],
            low: vec![0; n],
            on_stack: vec![false; n],
            stack: Vec::new(),
            next: 0,
            out: Vec::new(),
        };
        for v in 0..n {
            if t.index[v].is_none() {
                t.visit(v);
            }
        }
        t.out.sort();
        t.out
    }

    /// The cycles, as text; empty when there are none.
    fn cycle_report(&self) -> String {
        let edges = self.edges();
        let succ = successors(self.files.len(), &edges);
        let mut s = String::new();
        for comp in self.cycles(&edges) {
            let _ = writeln!(
                s,
                "import cycle among {} files (one strongly connected component):",
                comp.len()
            );
            for &f in &comp {
                let _ = writeln!(s, "  {}", self.files[f].shown);
            }
            let _ = writeln!(s, "  edges:");
            for (&(a, b), names) in edges
                .iter()
                .filter(|((a, b), _)| comp.contains(a) && comp.contains(b))
            {
                let _ = writeln!(
                    s,
                    "    {} -> {}: {}",
                    self.files[a].shown,
                    self.files[b].shown,
                    names_text(names)
                );
            }
            let found = elementary_cycles(&comp, &succ, MAX_LISTED_CYCLES + 1);
            let _ = writeln!(s, "  cycles:");
            for c in found.iter().take(MAX_LISTED_CYCLES) {
                let chain: Vec<&str> = c
                    .iter()
                    .chain(c.first())
                    .map(|&f| self.files[f].shown.as_str())
                    .collect();
                let _ = writeln!(s, "    {}", chain.join(" -> "));
            }
            if found.len() > MAX_LISTED_CYCLES {
                let _ = writeln!(s, "    (more cycles not listed)");
            }
        }
        s
    }

    /// Every edge with its paths, one per line.
    fn graph_text(&self) -> String {
        let mut s = String::new();
        for ((a, b), names) in self.edges() {
            let _ = writeln!(
                s,
                "{} -> {}: {}",
                self.files[a].shown,
                self.files[b].shown,
                names_text(&names)
            );
        }
        s
    }

    /// The graph in Graphviz's dot language.
    fn graph_dot(&self, name: &str) -> String {
        let mut s = format!("digraph \"{name}\" {{\n  rankdir=BT;\n  node [shape=box];\n");
        for f in &self.files {
            let _ = writeln!(s, "  \"{}\";", f.shown);
        }
        for (a, b) in self.edges().keys() {
            let _ = writeln!(
                s,
                "  \"{}\" -> \"{}\";",
                self.files[*a].shown, self.files[*b].shown
            );
        }
        s.push_str("}\n");
        s
    }
}

/// Cycles listed per component at most.
const MAX_LISTED_CYCLES: usize = 40;

fn successors(n: usize, edges: &BTreeMap<(usize, usize), EdgeNames>) -> Vec<Vec<usize>> {
    let mut succ = vec![Vec::new(); n];
    for &(a, b) in edges.keys() {
        succ[a].push(b);
    }
    succ
}

fn names_text(names: &EdgeNames) -> String {
    names
        .iter()
        .map(|(n, lines)| {
            let l: Vec<String> = lines.iter().map(usize::to_string).collect();
            format!("{n} (line {})", l.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Up to `limit` elementary cycles inside component `comp`, each starting at its smallest file.
fn elementary_cycles(comp: &[usize], succ: &[Vec<usize>], limit: usize) -> Vec<Vec<usize>> {
    fn walk(
        start: usize,
        path: &mut Vec<usize>,
        allowed: &BTreeSet<usize>,
        succ: &[Vec<usize>],
        out: &mut Vec<Vec<usize>>,
        limit: usize,
    ) {
        let last = *path.last().expect("non-empty");
        for &n in &succ[last] {
            if out.len() >= limit {
                return;
            }
            if n == start {
                out.push(path.clone());
            } else if allowed.contains(&n) && n > start && !path.contains(&n) {
                path.push(n);
                walk(start, path, allowed, succ, out, limit);
                path.pop();
            }
        }
    }
    let allowed: BTreeSet<usize> = comp.iter().copied().collect();
    let mut out = Vec::new();
    for &s in comp {
        walk(s, &mut vec![s], &allowed, succ, &mut out, limit);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The workspace.

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration/ has a parent")
        .to_path_buf()
}

/// Every `.rs` file under `dir`, sorted; `target/` and hidden directories are skipped.
fn rs_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    todo.push(p);
                }
            } else if name.ends_with(".rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The `members` of the workspace's Cargo.toml.
fn workspace_members(root: &Path) -> Vec<String> {
    let toml = std::fs::read_to_string(root.join("Cargo.toml")).expect("read Cargo.toml");
    let start = toml.find("members").expect("members in Cargo.toml");
    let list = &toml[start..];
    let list = &list[list.find('[').expect("[")..=list.find(']').expect("]")];
    list.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Fails with the report if crate `name`'s `src/` has an import cycle; prints the graph when
/// `LAYERS_GRAPH` is set (`dot`: Graphviz, anything else: edges with paths).
fn assert_no_cycle(name: &str) {
    let c = Crate::load(&workspace_root(), name);
    assert!(
        !c.files.is_empty(),
        "no source files under {name}/src: is the workspace layout as expected?"
    );
    match std::env::var("LAYERS_GRAPH").as_deref() {
        Ok("dot") => eprintln!("{}", c.graph_dot(name)),
        Ok(_) => eprintln!("{name}/src file graph:\n{}", c.graph_text()),
        Err(_) => {}
    }
    let report = c.cycle_report();
    assert!(report.is_empty(), "{name}/src has import cycles:\n{report}");
}

#[test]
fn transport_src_has_no_import_cycle() {
    assert_no_cycle("transport");
}

#[test]
fn actors_src_has_no_import_cycle() {
    assert_no_cycle("actors");
}

#[test]
fn runtime_src_has_no_import_cycle() {
    assert_no_cycle("runtime");
}

#[test]
fn macros_src_has_no_import_cycle() {
    assert_no_cycle("macros");
}

#[test]
fn integration_src_has_no_import_cycle() {
    assert_no_cycle("integration");
}

/// A new library crate must be added to [`CHECKED`] (`examples` holds only binaries).
#[test]
fn every_workspace_library_crate_is_checked_for_cycles() {
    let members = workspace_members(&workspace_root());
    let unchecked: Vec<&String> = members
        .iter()
        .filter(|m| !CHECKED.contains(&m.as_str()) && m.as_str() != "examples")
        .collect();
    assert!(
        unchecked.is_empty(),
        "not checked for cycles: {unchecked:?}"
    );
    for c in CHECKED {
        assert!(members.iter().any(|m| m == c), "{c} is not a member");
    }
}

// ---------------------------------------------------------------------------------------------
// The layer order of actors/src (actors/src/lib.rs's table).

/// The layers of `actors/src`, lowest first, as `actors/src/lib.rs`'s table has them: a name
/// and the files (a name ending in `/`: every file under that directory). A file may import
/// from its own layer (the cycle check keeps that acyclic) and from the layers below it.
const ACTORS_LAYERS: [(&str, &[&str]); 6] = [
    (
        "cores",
        &[
            "addr.rs",
            "name_table.rs",
            "name_distr.rs",
            "topsrv.rs",
            "socket.rs",
            "socket/",
            // Communication groups (kernel `group.c`), when they land.
            "group.rs",
            "group/",
        ],
    ),
    (
        "context",
        &[
            "clock.rs",
            "crypto.rs",
            "tx.rs",
            "flow.rs",
            "msg.rs",
            "ctx.rs",
        ],
    ),
    ("routing", &["send.rs", "route.rs"]),
    ("actors", &["actor.rs", "actor/"]),
    ("user handles", &["sock.rs", "sock/"]),
    ("facade", &["node.rs"]),
];

/// Files of `actors/src` outside the layers: the crate root declares every module and
/// re-exports the facade.
const ACTORS_EXEMPT: [&str; 1] = ["lib.rs"];

/// The rank (index in `layers`) of the file at `rel` (its path under `src/`).
fn rank_of(layers: &[(&str, &[&str])], rel: &str) -> Option<usize> {
    layers.iter().position(|(_, files)| {
        files
            .iter()
            .any(|f| rel == *f || (f.ends_with('/') && rel.starts_with(f)))
    })
}

/// Every import of a file from a layer above its own, and every file in no layer and not
/// exempt, as text; empty when there are none. `prefix` is what the crate's report paths
/// carry before the path under `src/`.
fn layer_report(c: &Crate, prefix: &str, layers: &[(&str, &[&str])], exempt: &[&str]) -> String {
    let rel = |f: usize| {
        c.files[f]
            .shown
            .strip_prefix(prefix)
            .unwrap_or(&c.files[f].shown)
    };
    let rank = |f: usize| {
        let r = rel(f);
        if exempt.contains(&r) {
            None
        } else {
            rank_of(layers, r)
        }
    };
    let mut s = String::new();
    for (i, f) in c.files.iter().enumerate() {
        if !exempt.contains(&rel(i)) && rank(i).is_none() {
            let _ = writeln!(
                s,
                "{} is in no layer: add it to the layer table (ACTORS_LAYERS here and the \
                 table in actors/src/lib.rs)",
                f.shown
            );
        }
    }
    for ((a, b), names) in c.edges() {
        let (Some(ra), Some(rb)) = (rank(a), rank(b)) else {
            continue;
        };
        if rb > ra {
            let _ = writeln!(
                s,
                "{} ({}, layer {ra}) imports from {} ({}, layer {rb}), a higher layer: {}",
                c.files[a].shown,
                layers[ra].0,
                c.files[b].shown,
                layers[rb].0,
                names_text(&names)
            );
        }
    }
    s
}

/// Per layer: its files and the imports that stay in it or go down, for the test's output.
fn layer_summary(c: &Crate, prefix: &str, layers: &[(&str, &[&str])]) -> String {
    let rank = |f: usize| {
        let shown = &c.files[f].shown;
        rank_of(layers, shown.strip_prefix(prefix).unwrap_or(shown))
    };
    let edges = c.edges();
    let mut s = String::new();
    for (r, (name, _)) in layers.iter().enumerate() {
        let files = (0..c.files.len()).filter(|&f| rank(f) == Some(r)).count();
        let same = edges
            .keys()
            .filter(|&&(a, b)| rank(a) == Some(r) && rank(b) == Some(r))
            .count();
        let down = edges
            .keys()
            .filter(|&&(a, b)| rank(a) == Some(r) && rank(b).is_some_and(|rb| rb < r))
            .count();
        let _ = writeln!(
            s,
            "layer {r} {name}: {files} files, {same} imports within the layer, {down} to lower layers"
        );
    }
    s
}

#[test]
fn actors_files_import_only_from_lower_layers() {
    let c = Crate::load(&workspace_root(), "actors");
    assert!(
        !c.files.is_empty(),
        "no source files under actors/src: is the workspace layout as expected?"
    );
    let prefix = "actors/src/";
    eprint!("{}", layer_summary(&c, prefix, &ACTORS_LAYERS));
    let report = layer_report(&c, prefix, &ACTORS_LAYERS, &ACTORS_EXEMPT);
    assert!(
        report.is_empty(),
        "actors/src breaks its layer order (actors/src/lib.rs):\n{report}"
    );
}

#[test]
fn no_source_file_is_over_1600_lines() {
    let root = workspace_root();
    let mut over = Vec::new();
    for m in workspace_members(&root) {
        for p in rs_files(&root.join(&m)) {
            let text = std::fs::read_to_string(&p).expect("read");
            let lines = text.lines().count();
            if lines > MAX_LINES {
                let shown = p.strip_prefix(&root).unwrap_or(&p).display().to_string();
                over.push(format!("  {shown}: {lines} lines"));
            }
        }
    }
    assert!(
        over.is_empty(),
        "source files over {MAX_LINES} lines (split them along the layers):\n{}",
        over.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// The checker's own tests, on small inline crates.

fn krate(files: &[(&str, &str)]) -> Crate {
    let sources: Vec<(String, String)> = files
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect();
    Crate::from_sources("", &sources)
}

/// The edges as `from -> to` strings.
fn edge_list(c: &Crate) -> Vec<String> {
    c.edges()
        .keys()
        .map(|&(a, b)| format!("{} -> {}", c.files[a].shown, c.files[b].shown))
        .collect()
}

fn segs(r: &Ref) -> String {
    r.text()
}

#[test]
fn lexer_skips_comments_strings_chars_and_lifetimes() {
    let src = r####"
        // crate::a::x in a comment
        /* crate::b /* nested crate::c */ crate::d */
        /// doc: [`crate::e::E`]
        let s = "crate::f::g";
        let r = r#"crate::h "quoted" "#;
        let b = b"crate::i";
        let c = '"'; let d = '\''; let e = b'x';
        fn f<'a>(x: &'a str) -> &'static str { x }
        crate::real::path
    "####;
    let p = parse(src);
    let paths: Vec<String> = p.refs.iter().map(segs).collect();
    assert_eq!(paths, ["crate::real::path"]);
    // `'static` is a lifetime, not the item keyword: no item named `str`.
    assert!(!p.items.contains("str"), "{:?}", p.items);
    assert!(p.items.contains("f"));
    let toks = lex("r#type::x");
    assert_eq!(toks[0].tok, Tok::Ident("type".into()));
}

#[test]
fn lexer_counts_lines_through_multiline_literals() {
    let p = parse("let s = \"a\nb\";\n/* c\nd */\ncrate::x::y();\n");
    assert_eq!(p.refs[0].line, 5);
}

#[test]
fn use_trees_are_expanded_with_groups_self_aliases_and_globs() {
    let p = parse(
        "use crate::{a::X, b::{self, Y as Z}, c::*};\n\
         pub(crate) use super::d::W;\n\
         pub use ::ext::Q;\n\
         use std::io;\n",
    );
    let got: Vec<(String, Option<String>, RefKind)> = p
        .refs
        .iter()
        .map(|r| (segs(r), r.alias.clone(), r.kind))
        .collect();
    let private = RefKind::Use { public: false };
    let public = RefKind::Use { public: true };
    assert_eq!(
        got,
        [
            ("crate::a::X".into(), None, private),
            ("crate::b".into(), None, private),
            ("crate::b::Y".into(), Some("Z".into()), private),
            ("crate::c::*".into(), None, private),
            ("super::d::W".into(), None, public),
            ("::ext::Q".into(), None, public),
            ("std::io".into(), None, private),
        ]
    );
}

#[test]
fn code_paths_stop_at_generics_and_visibility_paths_are_ignored() {
    let p = parse(
        "pub(in crate::a) fn f() { crate::b::C::<u8>::new(); <crate::d::E as T>::g(); }\n\
         impl X { fn h(&self) { self.x(); Self::y(); self::z::w(); } }",
    );
    let paths: Vec<String> = p.refs.iter().map(segs).collect();
    assert_eq!(
        paths,
        ["crate::b::C", "crate::d::E", "Self::y", "self::z::w"]
    );
}

#[test]
fn inline_modules_scope_their_paths() {
    let p = parse(
        "fn a() {}\nmod tests { use super::*; mod deep { use super::super::x; } }\nfn b() {}",
    );
    let scopes: Vec<(String, Vec<String>)> =
        p.refs.iter().map(|r| (segs(r), r.scope.clone())).collect();
    assert_eq!(
        scopes,
        [
            ("super::*".into(), vec!["tests".to_string()]),
            (
                "super::super::x".into(),
                vec!["tests".to_string(), "deep".to_string()]
            ),
        ]
    );
    let items: Vec<&str> = p.items.iter().map(String::as_str).collect();
    assert_eq!(items, ["a", "b", "tests"]);
}

#[test]
fn module_files_map_to_module_paths() {
    assert_eq!(module_of("lib.rs"), (vec![], true));
    assert_eq!(module_of("a.rs"), (vec!["a".to_string()], false));
    assert_eq!(
        module_of("a/b/mod.rs"),
        (vec!["a".to_string(), "b".to_string()], true)
    );
    // `a.rs` beside `a/` is a module root too.
    let c = krate(&[("lib.rs", ""), ("a.rs", ""), ("a/b.rs", "")]);
    let roots: Vec<(&str, bool)> = c.files.iter().map(|f| (f.shown.as_str(), f.root)).collect();
    assert_eq!(roots, [("a.rs", true), ("a/b.rs", false), ("lib.rs", true)]);
}

#[test]
fn paths_resolve_to_the_longest_module_with_a_file() {
    let c = krate(&[
        ("lib.rs", "pub mod a; pub mod b;"),
        ("a.rs", "pub mod x { pub fn f() {} }"),
        ("b/mod.rs", "mod c;"),
        (
            "b/c.rs",
            "use crate::a::x::f; fn g() { crate::b::c::h(); super::d::K; }",
        ),
        ("b/d.rs", "pub const K: u8 = 0;"),
    ]);
    assert_eq!(edge_list(&c), ["b/c.rs -> a.rs", "b/c.rs -> b/d.rs"]);
}

#[test]
fn mod_declarations_and_test_modules_make_no_edges() {
    let c = krate(&[
        ("lib.rs", "mod a; mod b;"),
        (
            "a.rs",
            "pub fn f() {}\n#[cfg(test)]\nmod tests { use super::*; #[test] fn t() { f(); self::g(); } }",
        ),
        ("b.rs", "pub fn g() {}"),
    ]);
    assert!(edge_list(&c).is_empty(), "{:?}", edge_list(&c));
}

#[test]
fn reexports_resolve_to_the_defining_module_and_make_no_edge_from_roots() {
    let c = krate(&[
        (
            "lib.rs",
            "pub mod a; pub mod b; pub mod m;\npub use a::Alpha;\npub use m::*;\npub use b::Beta as B2;",
        ),
        ("a.rs", "pub struct Alpha; fn f() { crate::B2::new(); }"),
        ("b.rs", "pub struct Beta; use crate::{Alpha, Gamma};"),
        ("m/mod.rs", "mod g; pub use self::g::Gamma;"),
        ("m/g.rs", "pub struct Gamma;"),
    ]);
    assert_eq!(
        edge_list(&c),
        ["a.rs -> b.rs", "b.rs -> a.rs", "b.rs -> m/g.rs"]
    );
    let report = c.cycle_report();
    assert!(report.contains("import cycle among 2 files"), "{report}");
    assert!(
        report.contains("a.rs -> b.rs: crate::B2::new (line 1)"),
        "{report}"
    );
    assert!(
        report.contains("b.rs -> a.rs: crate::Alpha (line 1)"),
        "{report}"
    );
    assert!(report.contains("    a.rs -> b.rs -> a.rs\n"), "{report}");
}

#[test]
fn lib_code_and_private_uses_make_edges_but_pub_uses_do_not() {
    let c = krate(&[
        (
            "lib.rs",
            "mod a; mod b; use a::A; pub use b::B; fn f() -> A { b::g() }",
        ),
        ("a.rs", "pub struct A;"),
        ("b.rs", "pub struct B; pub fn g() {}"),
    ]);
    assert_eq!(edge_list(&c), ["lib.rs -> a.rs", "lib.rs -> b.rs"]);
}

#[test]
fn leaf_pub_use_is_an_edge_and_is_followed() {
    let c = krate(&[
        ("lib.rs", "mod a; mod b; mod c;"),
        ("a.rs", "pub use crate::b::B;"),
        ("b.rs", "pub struct B;"),
        ("c.rs", "use crate::a::B;"),
    ]);
    assert_eq!(edge_list(&c), ["a.rs -> b.rs", "c.rs -> b.rs"]);
}

#[test]
fn names_a_module_file_does_not_define_stay_with_it() {
    let c = krate(&[
        ("lib.rs", "pub mod m; pub use m::*;"),
        ("m/mod.rs", "pub mod x; pub struct Own;"),
        ("m/x.rs", "pub struct X;"),
        ("user.rs", "use crate::{Own, Unknown}; use crate::x::X;"),
    ]);
    // `Own` through the glob to m/mod.rs; `Unknown` stays with lib.rs; the glob re-exports
    // the module `x` too, so `crate::x::X` is m/x.rs.
    assert_eq!(
        edge_list(&c),
        [
            "user.rs -> lib.rs",
            "user.rs -> m/mod.rs",
            "user.rs -> m/x.rs"
        ]
    );
}

#[test]
fn names_from_other_crates_make_no_edge() {
    let c = krate(&[
        ("lib.rs", "mod a; pub use other::Ext; pub use std::io;"),
        (
            "a.rs",
            "use crate::Ext; fn f() -> crate::io::Result<()> { Ok(()) }",
        ),
    ]);
    assert!(edge_list(&c).is_empty(), "{:?}", edge_list(&c));
}

#[test]
fn three_file_cycle_and_a_dag_beside_it() {
    let c = krate(&[
        ("lib.rs", ""),
        ("a.rs", "use crate::b::X;"),
        ("b.rs", "fn f() { crate::c::g(); }"),
        ("c.rs", "use super::a::Y;"),
        ("d.rs", "use crate::a::Y;"),
    ]);
    let edges = c.edges();
    assert_eq!(c.cycles(&edges), [vec![0, 1, 2]]);
    let report = c.cycle_report();
    assert!(
        report.contains("    a.rs -> b.rs -> c.rs -> a.rs\n"),
        "{report}"
    );
    assert!(!report.contains("d.rs"), "{report}");
    let dag = krate(&[("lib.rs", ""), ("a.rs", "use crate::b::X;"), ("b.rs", "")]);
    assert!(dag.cycle_report().is_empty());
}

#[test]
fn elementary_cycles_lists_each_cycle_once() {
    // a <-> b, b <-> c: two cycles, not a -> b -> c -> b -> a.
    let succ = vec![vec![1], vec![0, 2], vec![1]];
    assert_eq!(
        elementary_cycles(&[0, 1, 2], &succ, 10),
        [vec![0, 1], vec![1, 2]]
    );
}

#[test]
fn workspace_members_are_read_from_cargo_toml() {
    let m = workspace_members(&workspace_root());
    assert!(m.iter().any(|m| m == "runtime"), "{m:?}");
}

#[test]
fn glob_reexports_pass_only_public_names() {
    // wire/mod.rs re-exports every submodule with a glob; `any.rs` imports `Header` privately
    // (from the parent), `header.rs` defines it: `super::Header` is header.rs, not any.rs.
    let c = krate(&[
        ("lib.rs", "pub mod wire;"),
        (
            "wire/mod.rs",
            "mod any; mod header;\npub use any::*;\npub use header::*;",
        ),
        (
            "wire/any.rs",
            "use super::Header;\nfn private_helper() {}\npub struct Any;",
        ),
        (
            "wire/header.rs",
            "pub mod field { pub const A: u8 = 0; }\npub const fn size() -> usize { 0 }\n\
             pub(crate) struct Header;\nfn private_helper() {}",
        ),
        (
            "user.rs",
            "use crate::wire::{field, size, Any, private_helper};",
        ),
    ]);
    assert_eq!(
        edge_list(&c),
        [
            "user.rs -> wire/any.rs",
            "user.rs -> wire/header.rs",
            "user.rs -> wire/mod.rs",
            "wire/any.rs -> wire/header.rs",
        ]
    );
    let h = &c.files[c.by_module[&vec!["wire".to_string(), "header".to_string()]]];
    let public: Vec<&str> = h.parsed.pub_items.iter().map(String::as_str).collect();
    assert_eq!(public, ["Header", "field", "size"]);
}

#[test]
fn layer_check_reports_upward_imports_and_unlisted_files() {
    let c = krate(&[
        (
            "lib.rs",
            "pub mod addr; pub mod ctx; pub mod node; pub mod extra;\npub use node::Facade;\n\
             use node::Facade as F;",
        ),
        // A core naming the context (upward) and, through lib.rs's re-export, the facade.
        (
            "addr.rs",
            "use crate::ctx::Ctx;\npub struct Addr;\nfn f() -> crate::Facade { todo!() }",
        ),
        ("name_table.rs", "use crate::addr::Addr;"),
        ("ctx.rs", "use crate::addr::Addr;\npub struct Ctx;"),
        ("node.rs", "use crate::ctx::Ctx;\npub struct Facade;"),
        ("extra.rs", ""),
    ]);
    let report = layer_report(&c, "", &ACTORS_LAYERS, &ACTORS_EXEMPT);
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(
        lines,
        [
            "extra.rs is in no layer: add it to the layer table (ACTORS_LAYERS here and the \
             table in actors/src/lib.rs)",
            "addr.rs (cores, layer 0) imports from ctx.rs (context, layer 1), a higher layer: \
             crate::ctx::Ctx (line 1)",
            "addr.rs (cores, layer 0) imports from node.rs (facade, layer 5), a higher layer: \
             crate::Facade (line 3)",
        ],
        "{report}"
    );
    // Downward and same-layer imports, and lib.rs's, are fine.
    let ok = krate(&[
        (
            "lib.rs",
            "pub mod addr; pub mod name_table; pub mod ctx; use ctx::Ctx;",
        ),
        ("addr.rs", "pub struct Addr;"),
        ("name_table.rs", "use crate::addr::Addr;"),
        ("socket/rcv.rs", "use crate::name_table::T;"),
        ("ctx.rs", "use crate::addr::Addr;\npub struct Ctx;"),
    ]);
    let report = layer_report(&ok, "", &ACTORS_LAYERS, &ACTORS_EXEMPT);
    assert!(report.is_empty(), "{report}");
    let summary = layer_summary(&ok, "", &ACTORS_LAYERS);
    assert!(
        summary.starts_with(
            "layer 0 cores: 3 files, 2 imports within the layer, 0 to lower layers\n\
             layer 1 context: 1 files, 0 imports within the layer, 1 to lower layers\n"
        ),
        "{summary}"
    );
}

#[test]
fn layer_ranks_follow_the_table() {
    let rank = |p| rank_of(&ACTORS_LAYERS, p);
    assert_eq!(rank("addr.rs"), Some(0));
    assert_eq!(rank("socket/conn/mod.rs"), Some(0));
    assert_eq!(rank("ctx.rs"), Some(1));
    assert_eq!(rank("route.rs"), Some(2));
    assert_eq!(rank("actor/peer.rs"), Some(3));
    assert_eq!(rank("sock/dgram.rs"), Some(4));
    assert_eq!(rank("node.rs"), Some(5));
    assert_eq!(rank("lib.rs"), None);
    // `socket/` does not take `sock/`, nor `sock/` a file named like it.
    assert_eq!(rank("sockets.rs"), None);
}
