//! Keeps `src/sys.rs` in step with the public headers `include/attn/*.h`:
//!
//! * functions: every `ATTN_API` function of the headers is declared in sys.rs's `extern "C"`
//!   blocks and nothing else is; each has the same number of parameters and the same parameter
//!   and return types (C types mapped to Rust: `const float *` = `*const f32`, `attn_rnn **` =
//!   `*mut *mut attn_rnn`, `int64_t` = `i64`, ...);
//! * structs: every struct of the headers is in sys.rs (opaque ones as opaque structs), with the
//!   same fields in the same order and element types, and the same size, alignment, field offsets
//!   and field sizes as the C compiler gives them (a small C program built from the headers at
//!   test time with `$CC`, default `cc`, prints them);
//! * constants: every `#define ATTN_* <integer>` of the headers is a `pub const` with the same
//!   value in sys.rs, and sys.rs has no other constants.
//!
//! The headers are found through `ATTN_INCLUDE_DIR` (the directory holding attn/attn.h), else in
//! this repository (`../../include`), else through `pkg-config --variable=includedir attn`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

// ---- finding and reading the sources ----------------------------------------------------------

fn include_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ATTN_INCLUDE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../include");
    if repo.join("attn/attn.h").exists() {
        return repo;
    }
    if let Ok(out) = Command::new("pkg-config").args(["--variable=includedir", "attn"]).output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && dir.join("attn/attn.h").exists() {
            return dir;
        }
    }
    panic!(
        "sync test: cannot find libattn's headers (attn/attn.h): set ATTN_INCLUDE_DIR to the directory \
         that holds attn/, e.g. the repository's include/ or <prefix>/include"
    );
}

fn headers() -> Vec<(String, String)> {
    let dir = include_dir().join("attn");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("sync test: cannot list {}: {}", dir.display(), e))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().map_or(false, |x| x == "h"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "sync test: no headers in {}", dir.display());
    files
        .into_iter()
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), fs::read_to_string(&p).unwrap()))
        .collect()
}

fn sys_rs() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sys.rs");
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("sync test: cannot read {}: {}", path.display(), e))
}

/// Removes /* */ and // comments.
fn strip_c_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"/*") {
            match text[i + 2..].find("*/") {
                Some(end) => i += end + 4,
                None => break,
            }
            out.push(' ');
        } else if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else {
            let ch = text[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// (code without preprocessor lines, #define lines joined)
fn split_preprocessor(text: &str) -> (String, Vec<String>) {
    let joined = strip_c_comments(text).replace("\\\n", " ");
    let mut code = String::new();
    let mut directives = Vec::new();
    for line in joined.lines() {
        if line.trim_start().starts_with('#') {
            directives.push(line.trim().to_string());
        } else {
            code.push_str(line);
            code.push('\n');
        }
    }
    (code, directives)
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Identifiers and the punctuation `*`, `[`, `]` of a C declaration, in order.
fn c_tokens(decl: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in decl.chars() {
        if is_ident_char(c) {
            cur.push(c);
        } else {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            if c == '*' {
                out.push("*".to_string());
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn no_space(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

// ---- C types as Rust types ----------------------------------------------------------------------

fn rust_base(c: &str) -> String {
    match c {
        "int64_t" => "i64",
        "int32_t" => "i32",
        "uint64_t" => "u64",
        "uint32_t" => "u32",
        "uint8_t" => "u8",
        "int8_t" => "i8",
        "size_t" => "usize",
        "float" => "f32",
        "double" => "f64",
        "char" => "c_char",
        "void" => "c_void",
        other if other.starts_with("attn_") => other,
        other => panic!("sync test: no Rust mapping for the C type {:?}; extend rust_base()", other),
    }
    .to_string()
}

/// Type tokens (without the declared name) of a C declaration as the Rust type sys.rs must use.
fn rust_type(type_tokens: &[String], context: &str) -> String {
    let stars = type_tokens.iter().filter(|t| *t == "*").count();
    let first_star = type_tokens.iter().position(|t| t == "*").unwrap_or(type_tokens.len());
    assert!(
        !type_tokens[first_star..].iter().any(|t| t == "const"),
        "sync test: {context}: a const pointer (`* const`) is not mapped; extend rust_type()"
    );
    let is_const = type_tokens[..first_star].iter().any(|t| t == "const");
    let base: Vec<&String> = type_tokens[..first_star].iter().filter(|t| *t != "const").collect();
    assert_eq!(base.len(), 1, "sync test: {context}: cannot read the C type {:?}", type_tokens);
    let base = rust_base(base[0]);
    if stars == 0 {
        return base;
    }
    let mut t = format!("*{} {}", if is_const { "const" } else { "mut" }, base);
    for _ in 1..stars {
        t = format!("*mut {}", t);
    }
    t
}

// ---- functions ----------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Sig {
    params: Vec<String>, // Rust types as written (compared without whitespace)
    ret: String,         // "" for void / no return
}

fn header_functions() -> BTreeMap<String, (Sig, String)> {
    let mut out = BTreeMap::new();
    for (file, text) in headers() {
        let (code, _) = split_preprocessor(&text);
        let mut rest = code.as_str();
        while let Some(pos) = rest.find("ATTN_API") {
            let after = &rest[pos + "ATTN_API".len()..];
            let end = after.find(';').expect("ATTN_API declaration without ';'");
            let decl = collapse(&after[..end]);
            rest = &after[end..];
            let open = decl.find('(').unwrap_or_else(|| panic!("{file}: ATTN_API without '(': {decl}"));
            let close = decl.rfind(')').unwrap();
            let head = c_tokens(&decl[..open]);
            let name = head.last().unwrap().clone();
            let ctx = format!("{file}: {name}");
            let ret_tokens = &head[..head.len() - 1];
            let ret = if ret_tokens.len() == 1 && ret_tokens[0] == "void" {
                String::new()
            } else {
                rust_type(ret_tokens, &ctx)
            };
            let inner = decl[open + 1..close].trim();
            let params = if inner == "void" || inner.is_empty() {
                Vec::new()
            } else {
                inner
                    .split(',')
                    .map(|p| {
                        let toks = c_tokens(p);
                        assert!(toks.len() >= 2, "{ctx}: unnamed parameter {:?}", p);
                        rust_type(&toks[..toks.len() - 1], &ctx)
                    })
                    .collect()
            };
            out.insert(name, (Sig { params, ret }, file.clone()));
        }
    }
    assert!(out.len() > 40, "sync test: only {} ATTN_API functions found in the headers", out.len());
    out
}

/// Matching closing bracket of the one at `open`.
fn matching(text: &str, open: usize, l: u8, r: u8) -> usize {
    let b = text.as_bytes();
    let mut depth = 0;
    for (i, &c) in b.iter().enumerate().skip(open) {
        if c == l {
            depth += 1;
        } else if c == r {
            depth -= 1;
            if depth == 0 {
                return i;
            }
        }
    }
    panic!("unbalanced brackets in src/sys.rs");
}

fn strip_rust_comments(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn rust_functions() -> BTreeMap<String, Sig> {
    let text = strip_rust_comments(&sys_rs());
    let mut out = BTreeMap::new();
    let mut search = 0;
    while let Some(p) = text[search..].find("extern \"C\"") {
        let start = search + p;
        let open = start + text[start..].find('{').unwrap();
        let close = matching(&text, open, b'{', b'}');
        let block = &text[open + 1..close];
        for item in block.split(';') {
            let item = collapse(item);
            if item.is_empty() {
                continue;
            }
            let at = item.find("fn ").unwrap_or_else(|| panic!("src/sys.rs: not a function in extern block: {item}"));
            let paren = item.find('(').unwrap();
            let name = item[at + 3..paren].trim().to_string();
            let close_p = matching(&item, paren, b'(', b')');
            let params = item[paren + 1..close_p]
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let colon = p.find(':').unwrap_or_else(|| panic!("src/sys.rs: {name}: parameter without type: {p}"));
                    p[colon + 1..].trim().to_string()
                })
                .collect();
            let tail = item[close_p + 1..].trim();
            let ret = tail.strip_prefix("->").map(|t| t.trim().to_string()).unwrap_or_default();
            assert!(out.insert(name.clone(), Sig { params, ret }).is_none(), "src/sys.rs declares {name} twice");
        }
        search = close;
    }
    out
}

#[test]
fn functions_match_headers() {
    let c = header_functions();
    let r = rust_functions();
    let mut problems = Vec::new();
    for (name, (sig, file)) in &c {
        match r.get(name) {
            None => problems.push(format!("missing from src/sys.rs: {name} ({file})")),
            Some(rs) => {
                if rs.params.len() != sig.params.len() {
                    problems.push(format!(
                        "{name}: {} parameters in {file}, {} in src/sys.rs",
                        sig.params.len(),
                        rs.params.len()
                    ));
                } else {
                    for (i, (ct, rt)) in sig.params.iter().zip(&rs.params).enumerate() {
                        if no_space(ct) != no_space(rt) {
                            problems.push(format!("{name}: parameter {i} is {ct} in {file}, {rt} in src/sys.rs"));
                        }
                    }
                }
                if no_space(&rs.ret) != no_space(&sig.ret) {
                    problems.push(format!("{name}: returns {:?} in {file}, {:?} in src/sys.rs", sig.ret, rs.ret));
                }
            }
        }
    }
    for name in r.keys() {
        if !c.contains_key(name) {
            problems.push(format!("declared in src/sys.rs but not an ATTN_API function of the headers: {name}"));
        }
    }
    assert!(problems.is_empty(), "src/sys.rs is out of step with the headers:\n  {}", problems.join("\n  "));
    println!("{} functions match", c.len());
}

// ---- structs ------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    name: String,
    elem: String, // Rust element type, whitespace removed (arrays: the element)
    array: bool,
}

/// (structs with fields, opaque struct names)
fn header_structs() -> (BTreeMap<String, Vec<Field>>, BTreeSet<String>) {
    let mut full = BTreeMap::new();
    let mut opaque = BTreeSet::new();
    for (file, text) in headers() {
        let (code, _) = split_preprocessor(&text);
        let mut rest = code.as_str();
        while let Some(pos) = rest.find("typedef struct") {
            let after = &rest[pos + "typedef struct".len()..];
            let semi = after.find(';').unwrap();
            let brace = after.find('{');
            match brace {
                Some(b) if b < semi => {
                    let name = c_tokens(&after[..b])[0].clone();
                    let close = after.find('}').unwrap();
                    let fields = after[b + 1..close]
                        .split(';')
                        .map(str::trim)
                        .filter(|f| !f.is_empty())
                        .map(|f| {
                            let array = f.contains('[');
                            let decl = match f.find('[') {
                                Some(i) => &f[..i],
                                None => f,
                            };
                            let toks = c_tokens(decl);
                            let ctx = format!("{file}: {name}");
                            Field {
                                name: toks.last().unwrap().clone(),
                                elem: no_space(&rust_type(&toks[..toks.len() - 1], &ctx)),
                                array,
                            }
                        })
                        .collect();
                    full.insert(name, fields);
                    rest = &after[close..];
                }
                _ => {
                    let toks = c_tokens(&after[..semi]);
                    opaque.insert(toks[0].clone());
                    rest = &after[semi..];
                }
            }
        }
    }
    (full, opaque)
}

/// `pub struct NAME { ... }` of sys.rs: NAME -> fields (an opaque struct has the field `_private`).
fn rust_structs() -> BTreeMap<String, Vec<Field>> {
    let text = strip_rust_comments(&sys_rs());
    let mut out = BTreeMap::new();
    let mut search = 0;
    while let Some(p) = text[search..].find("pub struct ") {
        let start = search + p + "pub struct ".len();
        let open = start + text[start..].find('{').unwrap();
        let name = text[start..open].trim().to_string();
        let close = matching(&text, open, b'{', b'}');
        let mut fields = Vec::new();
        // Fields are separated by commas outside brackets (array types contain `;` and maybe `,`).
        let body = &text[open + 1..close];
        let mut depth = 0;
        let mut cur = String::new();
        for ch in body.chars().chain(std::iter::once(',')) {
            match ch {
                '[' | '(' => depth += 1,
                ']' | ')' => depth -= 1,
                _ => {}
            }
            if ch == ',' && depth == 0 {
                let f = collapse(&cur);
                cur.clear();
                if f.is_empty() || f.starts_with("#[") {
                    continue;
                }
                let f = f.trim_start_matches("pub ").to_string();
                let colon = f.find(':').unwrap();
                let ty = no_space(&f[colon + 1..]);
                let (elem, array) = if ty.starts_with('[') {
                    (ty[1..ty.find(';').unwrap()].to_string(), true)
                } else {
                    (ty, false)
                };
                fields.push(Field { name: f[..colon].trim().to_string(), elem, array });
            } else {
                cur.push(ch);
            }
        }
        out.insert(name, fields);
        search = close;
    }
    out
}

#[test]
fn struct_fields_match_headers() {
    let (c_full, c_opaque) = header_structs();
    let r = rust_structs();
    let mut problems = Vec::new();
    for name in &c_opaque {
        match r.get(name) {
            None => problems.push(format!("opaque struct {name} missing from src/sys.rs")),
            Some(f) if f.len() != 1 || f[0].name != "_private" => {
                problems.push(format!("{name} is opaque in the headers but has fields in src/sys.rs"))
            }
            _ => {}
        }
    }
    for (name, fields) in &c_full {
        match r.get(name) {
            None => problems.push(format!("struct {name} missing from src/sys.rs")),
            Some(rf) if rf != fields => problems.push(format!(
                "struct {name}: fields differ\n    header:     {:?}\n    src/sys.rs: {:?}",
                fields.iter().map(|f| format!("{}: {}{}", f.name, f.elem, if f.array { "[]" } else { "" })).collect::<Vec<_>>(),
                rf.iter().map(|f| format!("{}: {}{}", f.name, f.elem, if f.array { "[]" } else { "" })).collect::<Vec<_>>()
            )),
            _ => {}
        }
    }
    for name in r.keys() {
        if !c_full.contains_key(name) && !c_opaque.contains(name) {
            problems.push(format!("src/sys.rs has struct {name}, which no header defines"));
        }
    }
    assert!(problems.is_empty(), "src/sys.rs structs are out of step with the headers:\n  {}", problems.join("\n  "));
}

fn pointee_size<T>(_: *const T) -> usize {
    std::mem::size_of::<T>()
}

/// (struct, size, align, [(field, offset, size)]) of a sys.rs struct, fields named in the order
/// given (checked against the header's list below, so a field added to the header but not here
/// fails the test).
macro_rules! rust_layout {
    ($t:ident { $($f:ident),+ $(,)? }) => {{
        let u = std::mem::MaybeUninit::<attn::sys::$t>::uninit();
        let base = u.as_ptr();
        let mut fields: Vec<(String, usize, usize)> = Vec::new();
        $(
            // SAFETY: addr_of! on a field of uninitialized memory creates no reference.
            let p = unsafe { std::ptr::addr_of!((*base).$f) };
            fields.push((stringify!($f).to_string(), p as usize - base as usize, pointee_size(p)));
        )+
        (stringify!($t).to_string(), std::mem::size_of::<attn::sys::$t>(), std::mem::align_of::<attn::sys::$t>(), fields)
    }};
}

type Layout = (String, usize, usize, Vec<(String, usize, usize)>);

fn rust_layouts() -> Vec<Layout> {
    vec![
        rust_layout!(attn_tensor_info { name, ndim, shape, count }),
        rust_layout!(attn_cost { params, flops, workspace_bytes }),
        rust_layout!(attn_rnn_options {
            struct_size, cell, recurrence, bidirectional, bias, input_size, hidden_size, num_layers, rank,
            num_factors, factor_sizes, flags, more_factor_sizes
        }),
        rust_layout!(attn_memrnn_options {
            struct_size, input_size, output_size, controller_size, controller_layers, num_heads, memory_slots,
            memory_width, addressing, top_k, flags
        }),
        rust_layout!(attn_mha_options {
            struct_size, kind, bias, causal, memory_mode, embed_dim, num_heads, kdim, vdim, max_seq_len, proj_len,
            sharing, pinv, num_landmarks, pinv_iterations, conv_kernel, flags
        }),
        rust_layout!(attn_perceiver_options {
            struct_size, input_channels, input_axis, num_freq_bands, max_freq, fourier_encode, depth, num_latents,
            latent_dim, cross_heads, cross_dim_head, latent_heads, latent_dim_head, self_per_cross_attn,
            weight_tie_layers, num_classes, flags
        }),
        rust_layout!(attn_rank_report {
            sigma_max, frobenius, stable_rank, effective_rank, numerical_rank, rank_90, rank_99
        }),
    ]
}

/// Layouts as the C compiler sees them: a program generated from the header's field lists.
fn c_layouts(structs: &BTreeMap<String, Vec<Field>>) -> Vec<Layout> {
    let mut prog = String::from("#include <stdio.h>\n#include <stddef.h>\n#include <attn/attn.h>\nint main(void)\n{\n");
    for (name, fields) in structs {
        prog += &format!("    printf(\"S {name} %zu %zu\\n\", sizeof({name}), _Alignof({name}));\n");
        for f in fields {
            prog += &format!(
                "    printf(\"F {name} {0} %zu %zu\\n\", offsetof({name}, {0}), sizeof((({name} *)0)->{0}));\n",
                f.name
            );
        }
    }
    prog += "    return 0;\n}\n";

    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("attn-sync");
    fs::create_dir_all(&dir).unwrap();
    let src = dir.join("layout.c");
    let exe = dir.join("layout");
    fs::write(&src, prog).unwrap();
    let cc = std::env::var("CC").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "cc".to_string());
    let status = Command::new(&cc)
        .arg("-std=c11")
        .arg("-I")
        .arg(include_dir())
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .status()
        .unwrap_or_else(|e| panic!("sync test: cannot run the C compiler {cc:?} (set CC): {e}"));
    assert!(status.success(), "sync test: {cc} failed to compile {}", src.display());
    let out = Command::new(&exe).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut layouts: Vec<Layout> = Vec::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w[0] {
            "S" => layouts.push((w[1].to_string(), w[2].parse().unwrap(), w[3].parse().unwrap(), Vec::new())),
            "F" => layouts.last_mut().unwrap().3.push((w[2].to_string(), w[3].parse().unwrap(), w[4].parse().unwrap())),
            _ => panic!("unexpected line {line}"),
        }
    }
    layouts
}

#[test]
fn struct_layouts_match_c_compiler() {
    let (structs, _) = header_structs();
    let c: BTreeMap<String, Layout> = c_layouts(&structs).into_iter().map(|l| (l.0.clone(), l)).collect();
    let r: BTreeMap<String, Layout> = rust_layouts().into_iter().map(|l| (l.0.clone(), l)).collect();
    assert_eq!(
        c.keys().collect::<Vec<_>>(),
        r.keys().collect::<Vec<_>>(),
        "the structs of the headers and those whose layout this test checks differ: add the new one to rust_layouts()"
    );
    for (name, cl) in &c {
        assert_eq!(&r[name], cl, "layout of {name}: Rust (left) vs C (right) as (name, size, align, [(field, offset, size)])");
        println!("{name}: {} bytes, {} fields match", cl.1, cl.3.len());
    }
}

// ---- constants ----------------------------------------------------------------------------------

fn parse_int(v: &str) -> Option<i64> {
    let v = v.trim().trim_start_matches('(').trim_end_matches(')').trim();
    let (neg, v) = match v.strip_prefix('-') {
        Some(rest) => (true, rest.trim()),
        None => (false, v),
    };
    let v = v.trim_end_matches(['u', 'U', 'l', 'L']);
    let n = if let Some(hex) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        i64::from_str_radix(hex, 16).ok()?
    } else {
        v.replace('_', "").parse::<i64>().ok()?
    };
    Some(if neg { -n } else { n })
}

#[test]
fn constants_match_headers() {
    let mut c = BTreeMap::new();
    for (_, text) in headers() {
        for d in split_preprocessor(&text).1 {
            let w: Vec<&str> = d.splitn(3, char::is_whitespace).collect();
            if w.len() == 3 && w[0] == "#define" && w[1].starts_with("ATTN_") {
                if let Some(v) = parse_int(w[2]) {
                    c.insert(w[1].to_string(), v);
                }
            }
        }
    }
    assert!(c.len() > 30, "only {} integer constants found in the headers", c.len());
    let mut r = BTreeMap::new();
    for line in strip_rust_comments(&sys_rs()).lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("pub const ") {
            let colon = rest.find(':').unwrap();
            let eq = rest.find('=').unwrap();
            let value = rest[eq + 1..].trim().trim_end_matches(';');
            let v = parse_int(value).unwrap_or_else(|| panic!("src/sys.rs: {line}: not an integer literal"));
            r.insert(rest[..colon].trim().to_string(), v);
        }
    }
    let mut problems = Vec::new();
    for (name, v) in &c {
        match r.get(name) {
            None => problems.push(format!("missing from src/sys.rs: {name} = {v}")),
            Some(rv) if rv != v => problems.push(format!("{name} is {v} in the headers, {rv} in src/sys.rs")),
            _ => {}
        }
    }
    for name in r.keys().filter(|n| !c.contains_key(*n)) {
        problems.push(format!("src/sys.rs has the constant {name}, which no header defines"));
    }
    assert!(problems.is_empty(), "constants of src/sys.rs are out of step with the headers:\n  {}", problems.join("\n  "));
    println!("{} constants match", c.len());
}

/// Every declared function resolves in the linked library (a wrong name would not link).
#[test]
fn declarations_link() {
    use attn::sys::*;
    let fns: [*const (); 6] = [
        attn_version_number as *const (),
        attn_params_open as *const (),
        attn_rnn_forward_lengths as *const (),
        attn_memrnn_forward as *const (),
        attn_perceiver_cost as *const (),
        attn_lowrank_factors as *const (),
    ];
    assert!(fns.iter().all(|f| !f.is_null()));
    // SAFETY: no arguments.
    let v = unsafe { attn_version_number() };
    assert!(v >= ATTN_VERSION_MAJOR * 10000 + ATTN_VERSION_MINOR * 100, "library {v} older than the headers");
}
