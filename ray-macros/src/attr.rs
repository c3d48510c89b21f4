//! Options of `#[ray::actor(...)]` and `#[method(...)]`, parsed with
//! `parse_nested_meta`. Keyword lists live here, in one place.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::{Expr, ExprLit, ExprUnary, Lit, LitStr, UnOp};

use crate::ctxt::{did_you_mean, Ctxt};

/// Options accepted on the struct.
pub(crate) const STRUCT_OPTIONS: &[&str] = &[
    "max_reconstructions",
    "num_cpus",
    "num_gpus",
    "resources",
    "checkpointable",
    "checkpoint",
    "crate",
];

/// Options accepted on `#[method(...)]`.
pub(crate) const METHOD_OPTIONS: &[&str] = &["num_returns", "constructor"];

/// Largest `max_reconstructions` (2^30, Ray's `INFINITE_RECONSTRUCTION`).
pub(crate) const MAX_RECONSTRUCTIONS: u64 = 1 << 30;

/// Largest `num_returns`.
pub(crate) const MAX_NUM_RETURNS: usize = 12;

#[derive(Default)]
pub(crate) struct StructAttr {
    pub(crate) krate: Option<syn::Path>,
    pub(crate) max_reconstructions: Option<u64>,
    pub(crate) resources: ResourceOpts,
    pub(crate) checkpointable: Option<Span>,
    pub(crate) checkpoint: Option<AutoCheckpoint>,
}

/// `num_cpus = q`, `num_gpus = q`, `resources(name = q, ..)`: shared by
/// `#[ray::actor]` and `#[ray::remote]`.
#[derive(Default)]
pub(crate) struct ResourceOpts {
    pub(crate) num_cpus: Option<f64>,
    pub(crate) num_gpus: Option<f64>,
    pub(crate) resources: Vec<(String, f64)>,
}

impl ResourceOpts {
    /// Parses option `k` if it is a resource option; `Ok(false)` otherwise.
    pub(crate) fn parse(
        &mut self,
        cx: &Ctxt,
        meta: &ParseNestedMeta<'_>,
        k: &str,
    ) -> syn::Result<bool> {
        match k {
            "num_cpus" | "num_gpus" => {
                let expr: Expr = meta.value()?.parse()?;
                let q = quantity(cx, k, &expr);
                if k == "num_cpus" {
                    self.num_cpus = q;
                } else {
                    self.num_gpus = q;
                }
            }
            "resources" => {
                if !meta.input.peek(syn::token::Paren) {
                    cx.error_spanned_by(
                        &meta.path,
                        "`resources` takes a list: `resources(name = quantity, ..)`",
                    );
                    skip_value(meta)?;
                } else {
                    parse_resources(cx, meta, &mut self.resources)?;
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `options` followed by the builder calls that set these resources.
    pub(crate) fn apply(&self, options: TokenStream) -> TokenStream {
        let mut opts = options;
        if let Some(q) = self.num_cpus {
            opts = quote!(#opts.num_cpus(#q));
        }
        if let Some(q) = self.num_gpus {
            opts = quote!(#opts.num_gpus(#q));
        }
        for (name, q) in &self.resources {
            opts = quote!(#opts.resource(#name, #q));
        }
        opts
    }
}

/// `checkpoint(every_calls = N, every_ms = T, keep = K)`.
pub(crate) struct AutoCheckpoint {
    pub(crate) span: Span,
    pub(crate) every_calls: Option<u64>,
    pub(crate) every_ms: Option<u64>,
    pub(crate) keep: Option<u64>,
}

/// Options of `checkpoint(..)`.
pub(crate) const CHECKPOINT_OPTIONS: &[&str] = &["every_calls", "every_ms", "keep"];

fn positive_int(cx: &Ctxt, name: &str, expr: &Expr) -> Option<u64> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => match i.base10_parse::<u64>() {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                cx.error_spanned_by(expr, format!("`{name}` must be at least 1"));
                None
            }
        },
        _ => {
            cx.error_spanned_by(expr, format!("`{name}` takes a positive integer literal"));
            None
        }
    }
}

#[derive(Default)]
pub(crate) struct ImplAttr {
    pub(crate) krate: Option<syn::Path>,
}

#[derive(Default)]
pub(crate) struct MethodAttr {
    pub(crate) num_returns: Option<(usize, Span)>,
    pub(crate) constructor: Option<Span>,
}

pub(crate) fn key(meta: &ParseNestedMeta) -> String {
    path_string(&meta.path)
}

pub(crate) fn path_string(path: &syn::Path) -> String {
    path.segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
}

/// Consumes whatever value follows an option we rejected, so parsing goes on.
pub(crate) fn skip_value(meta: &ParseNestedMeta) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        let _content;
        syn::parenthesized!(_content in meta.input);
        let _: TokenStream = _content.parse()?;
    }
    Ok(())
}

/// A quantity literal: `1`, `0.5`. Errors name the option.
pub(crate) fn quantity(cx: &Ctxt, name: &str, expr: &Expr) -> Option<f64> {
    let value = match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse::<f64>().ok(),
        Expr::Lit(ExprLit {
            lit: Lit::Float(f), ..
        }) => f.base10_parse::<f64>().ok(),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_), ..
        }) => {
            cx.error_spanned_by(
                expr,
                format!("`{name}` cannot be negative: give a quantity like `{name} = 1` or `{name} = 0.5`"),
            );
            return None;
        }
        _ => None,
    };
    match value {
        None => {
            cx.error_spanned_by(
                expr,
                format!("`{name}` takes a number literal, e.g. `{name} = 1` or `{name} = 0.5`"),
            );
            None
        }
        Some(q) if q > 1.0 && q.fract() != 0.0 => {
            cx.error_spanned_by(
                expr,
                format!("`{name} = {q}`: quantities above 1 must be whole numbers (fractions are allowed only below 1)"),
            );
            None
        }
        Some(q) => Some(q),
    }
}

pub(crate) fn crate_path(cx: &Ctxt, meta: &ParseNestedMeta) -> syn::Result<Option<syn::Path>> {
    let lit: LitStr = meta.value()?.parse()?;
    match lit.parse::<syn::Path>() {
        Ok(p) => Ok(Some(p)),
        Err(_) => {
            cx.error_spanned_by(
                &lit,
                "`crate` takes a path in a string, e.g. `crate = \"my_ray\"`",
            );
            Ok(None)
        }
    }
}

/// Parses `#[ray::actor(...)]` on a struct.
pub(crate) fn parse_struct_attr(cx: &Ctxt, args: TokenStream) -> StructAttr {
    let mut out = StructAttr::default();
    let parser = syn::meta::parser(|meta| {
        let k = key(&meta);
        match k.as_str() {
            "crate" => out.krate = crate_path(cx, &meta)?,
            "checkpointable" => {
                if meta.input.peek(syn::Token![=]) || meta.input.peek(syn::token::Paren) {
                    cx.error_spanned_by(
                        &meta.path,
                        "`checkpointable` is a flag: write `#[ray::actor(checkpointable)]`",
                    );
                    skip_value(&meta)?;
                } else {
                    out.checkpointable = Some(
                        meta.path
                            .get_ident()
                            .map_or_else(Span::call_site, |i| i.span()),
                    );
                }
            }
            "checkpoint" => {
                let span = meta
                    .path
                    .get_ident()
                    .map_or_else(Span::call_site, |i| i.span());
                if !meta.input.peek(syn::token::Paren) {
                    cx.error_spanned_by(
                        &meta.path,
                        "`checkpoint` takes a policy: `checkpoint(every_calls = 100, every_ms = 5000, keep = 3)`",
                    );
                    return skip_value(&meta);
                }
                let mut auto = AutoCheckpoint {
                    span,
                    every_calls: None,
                    every_ms: None,
                    keep: None,
                };
                meta.parse_nested_meta(|inner| {
                    let k = path_string(&inner.path);
                    if !CHECKPOINT_OPTIONS.contains(&k.as_str()) {
                        cx.error_spanned_by(
                            &inner.path,
                            format!(
                                "unknown checkpoint option `{k}`{}; valid options are: {}",
                                did_you_mean(&k, CHECKPOINT_OPTIONS),
                                CHECKPOINT_OPTIONS.join(", ")
                            ),
                        );
                        return skip_value(&inner);
                    }
                    let expr: Expr = inner.value()?.parse()?;
                    let v = positive_int(cx, &k, &expr);
                    match k.as_str() {
                        "every_calls" => auto.every_calls = v,
                        "every_ms" => auto.every_ms = v,
                        _ => auto.keep = v,
                    }
                    Ok(())
                })?;
                if auto.every_calls.is_none() && auto.every_ms.is_none() {
                    cx.error_at(
                        span,
                        "`checkpoint(..)` needs `every_calls = N` and/or `every_ms = T` to say when to checkpoint",
                    );
                }
                out.checkpoint = Some(auto);
            }
            "max_reconstructions" => {
                let expr: Expr = meta.value()?.parse()?;
                match &expr {
                    Expr::Lit(ExprLit { lit: Lit::Int(i), .. }) => match i.base10_parse::<u64>() {
                        Ok(n) if n <= MAX_RECONSTRUCTIONS => out.max_reconstructions = Some(n),
                        _ => cx.error_spanned_by(
                            &expr,
                            "`max_reconstructions` must be in 0..=1073741824 (ray::INFINITE_RECONSTRUCTION, 2^30)",
                        ),
                    },
                    Expr::Unary(ExprUnary { op: UnOp::Neg(_), .. }) => cx.error_spanned_by(
                        &expr,
                        "`max_reconstructions` cannot be negative: it must be in 0..=1073741824",
                    ),
                    _ => cx.error_spanned_by(
                        &expr,
                        "`max_reconstructions` takes an integer literal in 0..=1073741824",
                    ),
                }
            }
            _ if out.resources.parse(cx, &meta, &k)? => {}
            _ => {
                cx.error_spanned_by(
                    &meta.path,
                    format!(
                        "unknown actor option `{k}`{}; valid options are: {}",
                        did_you_mean(&k, STRUCT_OPTIONS),
                        STRUCT_OPTIONS.join(", ")
                    ),
                );
                skip_value(&meta)?;
            }
        }
        Ok(())
    });
    if let Err(e) = parser.parse2(args) {
        cx.syn_error(e);
    }
    if let (Some(span), Some(_)) = (out.checkpointable, &out.checkpoint) {
        cx.error_at(
            span,
            "choose one checkpoint policy: `checkpointable` (your own `ray::Checkpointable` hooks) or `checkpoint(..)` (automatic serde state), not both",
        );
    }
    out
}

/// Parses `#[ray::actor(...)]` on an impl block: only `crate` belongs there.
pub(crate) fn parse_impl_attr(cx: &Ctxt, args: TokenStream) -> ImplAttr {
    let mut out = ImplAttr::default();
    let parser = syn::meta::parser(|meta| {
        let k = key(&meta);
        if k == "crate" {
            out.krate = crate_path(cx, &meta)?;
        } else if STRUCT_OPTIONS.contains(&k.as_str()) {
            cx.error_spanned_by(
                &meta.path,
                format!("`{k}` goes on the actor's struct, not on its impl block: `#[ray::actor({k} ...)] struct ...`"),
            );
            skip_value(&meta)?;
        } else {
            cx.error_spanned_by(
                &meta.path,
                format!("unknown option `{k}` on an actor impl block; only `crate = \"...\"` goes here (class options go on the struct)"),
            );
            skip_value(&meta)?;
        }
        Ok(())
    });
    if let Err(e) = parser.parse2(args) {
        cx.syn_error(e);
    }
    out
}

/// Whether an attribute is `#[method(...)]` (or `#[ray::method(...)]`).
pub(crate) fn is_method_attr(attr: &syn::Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|s| s.ident == "method")
}

/// Parses every `#[method(...)]` of one function.
pub(crate) fn parse_method_attrs(cx: &Ctxt, attrs: &[syn::Attribute]) -> MethodAttr {
    let mut out = MethodAttr::default();
    for attr in attrs.iter().filter(|a| is_method_attr(a)) {
        let list = match &attr.meta {
            syn::Meta::List(l) => l,
            _ => {
                cx.error_spanned_by(
                    attr,
                    "write `#[method(num_returns = N)]` or `#[method(constructor)]`",
                );
                continue;
            }
        };
        let r = list.parse_nested_meta(|meta| {
            let k = key(&meta);
            match k.as_str() {
                "num_returns" => {
                    let expr: Expr = meta.value()?.parse()?;
                    match &expr {
                        Expr::Lit(ExprLit { lit: Lit::Int(i), .. }) => match i.base10_parse::<usize>() {
                            Ok(n) if n <= MAX_NUM_RETURNS => {
                                if out.num_returns.is_some() {
                                    cx.error_spanned_by(&expr, "`num_returns` is given twice");
                                }
                                out.num_returns = Some((n, expr_span(&expr)));
                            }
                            _ => cx.error_spanned_by(
                                &expr,
                                format!("`num_returns` must be at most {MAX_NUM_RETURNS}; return a struct or a Vec to carry more"),
                            ),
                        },
                        Expr::Unary(ExprUnary { op: UnOp::Neg(_), .. }) => cx.error_spanned_by(
                            &expr,
                            "`num_returns` cannot be negative: use 0 (no ref), 1 (one ref) or N (an N-tuple of refs)",
                        ),
                        _ => cx.error_spanned_by(
                            &expr,
                            "`num_returns` takes an integer literal: 0 (no ref), 1 (one ref) or N (an N-tuple of refs)",
                        ),
                    }
                }
                "constructor" => {
                    out.constructor = Some(meta.path.get_ident().map_or_else(Span::call_site, |i| i.span()));
                }
                _ => {
                    cx.error_spanned_by(
                        &meta.path,
                        format!(
                            "unknown method option `{k}`{}; valid options are: {}",
                            did_you_mean(&k, METHOD_OPTIONS),
                            METHOD_OPTIONS.join(", ")
                        ),
                    );
                    skip_value(&meta)?;
                }
            }
            Ok(())
        });
        if let Err(e) = r {
            cx.syn_error(e);
        }
    }
    out
}

fn expr_span(e: &Expr) -> Span {
    syn::spanned::Spanned::span(e)
}

/// Parses `resources(name = quantity, ..)`: custom resources, never `CPU` or `GPU`.
pub(crate) fn parse_resources(
    cx: &Ctxt,
    meta: &ParseNestedMeta,
    out: &mut Vec<(String, f64)>,
) -> syn::Result<()> {
    meta.parse_nested_meta(|inner| {
        let name = path_string(&inner.path);
        let expr: Expr = inner.value()?.parse()?;
        if name == "CPU" || name == "GPU" {
            cx.error_spanned_by(
                &inner.path,
                format!(
                    "`{name}` cannot be a custom resource: use `num_{}s = ..` instead",
                    name.to_lowercase()
                ),
            );
        } else if let Some(q) = quantity(cx, &name, &expr) {
            out.push((name, q));
        }
        Ok(())
    })
}
