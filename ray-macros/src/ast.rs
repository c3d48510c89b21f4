//! The parsed model between syn and quote. Every piece keeps the user's own
//! tokens so errors point at them.

use proc_macro2::Span;
use quote::format_ident;
use syn::{FnArg, Ident, ImplItem, ImplItemFn, ItemImpl, Pat, ReturnType, Type, Visibility};

use crate::attr::{parse_method_attrs, MethodAttr};
use crate::ctxt::Ctxt;
use crate::valid::{
    check_owned_type, is_self_type, is_unit, replace_self, result_ok_type, CLASS_ITEMS, RESERVED,
};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReceiverKind {
    Ref,
    Mut,
}

pub(crate) struct Param {
    pub(crate) name: Ident,
    pub(crate) ty: Type,
}

/// How the method's return type is turned into the call's result.
pub(crate) enum Output {
    /// No return type, or `()`.
    Unit,
    /// `T`.
    Plain(Type),
    /// `Result<T, E>`: `T`.
    Fallible(Type),
}

impl Output {
    /// What a successful call produces.
    pub(crate) fn payload(&self) -> Type {
        match self {
            Output::Unit => syn::parse_quote!(()),
            Output::Plain(t) | Output::Fallible(t) => t.clone(),
        }
    }
}

pub(crate) struct Method<'a> {
    pub(crate) func: &'a ImplItemFn,
    pub(crate) receiver: ReceiverKind,
    pub(crate) params: Vec<Param>,
    pub(crate) output: Output,
    pub(crate) num_returns: usize,
    /// For `num_returns >= 2`: the tuple's element types.
    pub(crate) elems: Vec<Type>,
}

impl Method<'_> {
    pub(crate) fn ident(&self) -> &Ident {
        &self.func.sig.ident
    }
    pub(crate) fn vis(&self) -> &Visibility {
        &self.func.vis
    }
    pub(crate) fn is_async(&self) -> bool {
        self.func.sig.asyncness.is_some()
    }
}

pub(crate) struct Ctor<'a> {
    pub(crate) func: &'a ImplItemFn,
    pub(crate) params: Vec<Param>,
    pub(crate) fallible: bool,
    /// The constructor was rejected (its errors are reported): generate
    /// `remote(..)` with its arguments but a body that never runs, so calls
    /// to `remote` raise no second error and the `Default` fallback is not
    /// tried.
    pub(crate) placeholder: bool,
}

pub(crate) struct ActorImpl<'a> {
    pub(crate) original: &'a ItemImpl,
    pub(crate) class: Ident,
    pub(crate) handle: syn::Path,
    pub(crate) options: syn::Path,
    pub(crate) methods: Vec<Method<'a>>,
    pub(crate) ctor: Option<Ctor<'a>>,
    /// User functions whose names clash with items generated on the class
    /// itself (`remote`, `options`): left out of the output, so the clash is
    /// reported once, by us.
    pub(crate) dropped: Vec<&'a Ident>,
}

fn unraw(i: &Ident) -> String {
    let s = i.to_string();
    s.strip_prefix("r#").map(str::to_owned).unwrap_or(s)
}

fn sibling(path: &syn::Path, suffix: &str) -> syn::Path {
    let mut p = path.clone();
    if let Some(last) = p.segments.last_mut() {
        last.ident = format_ident!("{}{}", last.ident, suffix);
        last.arguments = syn::PathArguments::None;
    }
    p
}

impl<'a> ActorImpl<'a> {
    pub(crate) fn from_ast(cx: &Ctxt, item: &'a ItemImpl) -> Option<Self> {
        if let Some((_, path, _)) = &item.trait_ {
            cx.error_spanned_by(
                path,
                "`#[ray::actor]` goes on the actor's inherent impl block (`impl Counter { .. }`); trait impls are not remote",
            );
            return None;
        }
        if !item.generics.params.is_empty() {
            cx.error_spanned_by(
                &item.generics,
                "generic actors are not supported: remote methods need one concrete actor type",
            );
        }
        let path = match &*item.self_ty {
            Type::Path(tp) if tp.qself.is_none() && !tp.path.segments.is_empty() => tp.path.clone(),
            other => {
                cx.error_spanned_by(
                    other,
                    "`#[ray::actor]` impl blocks must be for a named struct, e.g. `impl Counter`",
                );
                return None;
            }
        };
        let last = path.segments.last().expect("non-empty path");
        if !matches!(last.arguments, syn::PathArguments::None) {
            cx.error_spanned_by(
                &last.arguments,
                "generic actors are not supported: remote methods need one concrete actor type",
            );
        }
        let class = last.ident.clone();
        let mut methods = Vec::new();
        let mut ctors: Vec<(Ctor<'a>, Option<Span>)> = Vec::new();
        let mut dropped = Vec::new();
        for it in &item.items {
            let ImplItem::Fn(func) = it else { continue };
            let attr = parse_method_attrs(cx, &func.attrs);
            let name = unraw(&func.sig.ident);
            if let Some((_, why)) = RESERVED.iter().find(|(n, _)| *n == name) {
                cx.error_spanned_by(
                    &func.sig.ident,
                    format!("`{name}` clashes with a generated item ({why}); rename the method"),
                );
                if CLASS_ITEMS.contains(&name.as_str()) {
                    dropped.push(&func.sig.ident);
                }
                continue;
            }
            if name.starts_with("__ray") {
                cx.error_spanned_by(
                    &func.sig.ident,
                    "names starting with `__ray` are reserved for generated code",
                );
                continue;
            }
            if func.sig.receiver().is_some() {
                if let Some(span) = attr.constructor {
                    cx.error_at(span, "a constructor cannot take `self`: it builds the actor, so it is an associated function returning `Self`");
                    // Neither a constructor nor a remote method: checking it
                    // as a method would only add errors about its result.
                    continue;
                }
                if let Some(m) = Method::from_ast(cx, func, &attr, &item.self_ty) {
                    methods.push(m);
                }
            } else {
                if let Some((_, span)) = attr.num_returns {
                    cx.error_at(
                        span,
                        format!("`num_returns` applies to remote methods (taking `&self` or `&mut self`); `{name}` is an associated function"),
                    );
                }
                let returns_self = ctor_shape(&func.sig.output, &class).is_some();
                if returns_self || attr.constructor.is_some() {
                    ctors.push((
                        Ctor::from_ast(cx, func, &class, &item.self_ty),
                        attr.constructor,
                    ));
                }
            }
        }
        let ctor = pick_ctor(cx, ctors);
        Some(ActorImpl {
            original: item,
            handle: sibling(&path, "Handle"),
            options: sibling(&path, "Options"),
            class,
            methods,
            ctor,
            dropped,
        })
    }
}

/// The constructor `remote()` calls: `None` means `Default`. When the choice is
/// ambiguous, the first candidate comes back as a placeholder.
fn pick_ctor<'a>(cx: &Ctxt, mut ctors: Vec<(Ctor<'a>, Option<Span>)>) -> Option<Ctor<'a>> {
    let marked: Vec<usize> = (0..ctors.len()).filter(|&i| ctors[i].1.is_some()).collect();
    let first_as_placeholder = |mut ctors: Vec<(Ctor<'a>, Option<Span>)>, i: usize| {
        let mut c = ctors.swap_remove(i).0;
        c.placeholder = true;
        Some(c)
    };
    match (marked.len(), ctors.len()) {
        (_, 0) => None,
        (0, 1) => ctors.pop().map(|(c, _)| c),
        (0, _) => {
            let names: Vec<String> = ctors
                .iter()
                .map(|(c, _)| format!("`{}`", c.func.sig.ident))
                .collect();
            for (c, _) in &ctors {
                cx.error_spanned_by(
                    &c.func.sig.ident,
                    format!(
                        "several associated functions return `Self` ({}): mark the one `remote()` calls with `#[method(constructor)]`",
                        names.join(", ")
                    ),
                );
            }
            first_as_placeholder(ctors, 0)
        }
        (1, _) => Some(ctors.swap_remove(marked[0]).0),
        _ => {
            for &i in &marked[1..] {
                cx.error_at(
                    ctors[i].1.expect("marked"),
                    "only one function can be `#[method(constructor)]`",
                );
            }
            first_as_placeholder(ctors, marked[0])
        }
    }
}

/// `Some(fallible)` when the return type is `Self`/the class, or a `Result` of it.
fn ctor_shape(ret: &ReturnType, class: &Ident) -> Option<bool> {
    let ReturnType::Type(_, ty) = ret else {
        return None;
    };
    if is_self_type(ty, class) {
        return Some(false);
    }
    result_ok_type(ty)
        .filter(|ok| is_self_type(ok, class))
        .map(|_| true)
}

pub(crate) fn check_fn_header(cx: &Ctxt, sig: &syn::Signature, what: &str) {
    if !sig.generics.params.is_empty() {
        cx.error_spanned_by(
            &sig.generics,
            format!("{what} cannot be generic: a call carries concrete argument types"),
        );
    }
    if let Some(u) = &sig.unsafety {
        cx.error_spanned_by(u, format!("{what} cannot be `unsafe`"));
    }
    if let Some(a) = &sig.abi {
        cx.error_spanned_by(a, format!("{what} cannot have an `extern` ABI"));
    }
    if let Some(v) = &sig.variadic {
        cx.error_spanned_by(v, format!("{what} cannot be variadic"));
    }
}

pub(crate) fn params(cx: &Ctxt, sig: &syn::Signature, self_ty: Option<&Type>) -> Vec<Param> {
    let mut out = Vec::new();
    for (i, arg) in sig.inputs.iter().enumerate() {
        let FnArg::Typed(pt) = arg else { continue };
        check_owned_type(cx, &pt.ty, "arguments");
        let name = match &*pt.pat {
            Pat::Ident(pi) if pi.subpat.is_none() => pi.ident.clone(),
            _ => format_ident!("arg{}", i),
        };
        out.push(Param {
            name,
            ty: match self_ty {
                Some(st) => replace_self(&pt.ty, st),
                None => (*pt.ty).clone(),
            },
        });
    }
    out
}

/// The shape of a method's (or remote function's) result, checked against
/// `num_returns`: the output and, for `num_returns >= 2`, the tuple's types.
pub(crate) fn returns(
    cx: &Ctxt,
    sig: &syn::Signature,
    num_returns: usize,
    self_ty: Option<&Type>,
    what: &str,
) -> (Output, Vec<Type>) {
    let (output, ret_ty) = match &sig.output {
        ReturnType::Default => (Output::Unit, None),
        ReturnType::Type(_, ty) => {
            check_owned_type(cx, ty, "results");
            let ty_s = match self_ty {
                Some(st) => replace_self(ty, st),
                None => (**ty).clone(),
            };
            let out = if is_unit(&ty_s) {
                Output::Unit
            } else if let Some(ok) = result_ok_type(&ty_s) {
                Output::Fallible(ok.clone())
            } else {
                Output::Plain(ty_s)
            };
            (out, Some(&**ty))
        }
    };
    let mut elems = Vec::new();
    let payload = output.payload();
    let ret_span_tokens = || -> proc_macro2::TokenStream {
        match ret_ty {
            Some(t) => quote::quote!(#t),
            None => {
                let i = &sig.ident;
                quote::quote!(#i)
            }
        }
    };
    match num_returns {
        0 => {
            if !is_unit(&payload) {
                cx.error_spanned_by(
                    ret_span_tokens(),
                    format!("`num_returns = 0` needs the {what} to return `()` or `Result<(), E>`: the caller gets no ref to read a value from"),
                );
            }
        }
        1 => {}
        n => match &payload {
            Type::Tuple(t) if t.elems.len() == n => elems = t.elems.iter().cloned().collect(),
            Type::Tuple(t) => {
                let msg = format!(
                    "`num_returns = {n}` needs the {what} to return a {n}-tuple (or a `Result` of one), but it returns a {}-tuple",
                    t.elems.len()
                );
                cx.error_spanned_by(ret_span_tokens(), msg);
            }
            _ => {
                let msg = format!(
                    "`num_returns = {n}` needs the {what} to return a {n}-tuple written out, e.g. `-> ({})`, or a `Result` of one",
                    vec!["A"; n].join(", ")
                );
                cx.error_spanned_by(ret_span_tokens(), &msg);
            }
        },
    }
    (output, elems)
}

impl<'a> Method<'a> {
    fn from_ast(
        cx: &Ctxt,
        func: &'a ImplItemFn,
        attr: &MethodAttr,
        self_ty: &Type,
    ) -> Option<Self> {
        let errors_before = cx.count();
        check_fn_header(cx, &func.sig, "remote methods");
        let recv = func.sig.receiver().expect("checked by caller");
        let receiver = match (&recv.reference, &recv.mutability, recv.colon_token) {
            (Some((_, None)), None, None) => ReceiverKind::Ref,
            (Some((_, None)), Some(_), None) => ReceiverKind::Mut,
            (Some((_, Some(lt))), _, None) => {
                cx.error_spanned_by(
                    lt,
                    "remote methods take `&self` or `&mut self` without a named lifetime",
                );
                ReceiverKind::Ref
            }
            _ => {
                cx.error_spanned_by(
                    recv,
                    "remote methods take `&self` or `&mut self`: the actor keeps its state between calls, so a method cannot consume it",
                );
                ReceiverKind::Ref
            }
        };
        let params = params(cx, &func.sig, Some(self_ty));
        let num_returns = attr.num_returns.map_or(1, |(n, _)| n);
        let (output, elems) = returns(cx, &func.sig, num_returns, Some(self_ty), "method");
        if cx.count() > errors_before {
            return None;
        }
        Some(Method {
            func,
            receiver,
            params,
            output,
            num_returns,
            elems,
        })
    }
}

impl<'a> Ctor<'a> {
    /// Always returns the constructor; one with errors (reported here) is a
    /// placeholder.
    fn from_ast(cx: &Ctxt, func: &'a ImplItemFn, class: &Ident, self_ty: &Type) -> Self {
        let errors_before = cx.count();
        check_fn_header(cx, &func.sig, "the constructor");
        if let Some(a) = &func.sig.asyncness {
            cx.error_spanned_by(a, "the constructor cannot be `async`: build the state synchronously, then do async work in a method");
        }
        let fallible = match ctor_shape(&func.sig.output, class) {
            Some(f) => f,
            None => {
                let msg = "a `#[method(constructor)]` must return `Self` or `Result<Self, E>`";
                match &func.sig.output {
                    ReturnType::Type(_, ty) => cx.error_spanned_by(ty, msg),
                    ReturnType::Default => cx.error_spanned_by(&func.sig.ident, msg),
                }
                false
            }
        };
        let before_params = cx.count();
        let mut params = params(cx, &func.sig, Some(self_ty));
        if cx.count() > before_params {
            // Borrowed or unnamed argument types would raise more errors in
            // the placeholder's signature: it takes no arguments instead.
            params.clear();
        }
        Ctor {
            func,
            params,
            fallible,
            placeholder: cx.count() > errors_before,
        }
    }
}
