//! Semantic checks on types and names, and the shapes the expansion relies on.

use syn::visit::Visit;
use syn::visit_mut::VisitMut;
use syn::{GenericArgument, PathArguments, Type};

use crate::ctxt::Ctxt;

/// Names a remote method (or associated function) cannot take, because the
/// generated handle or class already uses them.
pub(crate) const RESERVED: &[(&str, &str)] = &[
    ("remote", "`Counter::remote(..)` creates the actor"),
    (
        "options",
        "`Counter::options()` starts a creation with options",
    ),
    (
        "actor_id",
        "the handle's `actor_id()` returns the actor's ID",
    ),
    (
        "handle_id",
        "the handle's `handle_id()` returns the handle's ID",
    ),
    ("clone", "cloning a handle forks it"),
    ("fmt", "handles implement `Display` and `Debug`"),
];

/// The reserved names that are items of the class itself (not only of the
/// handle): a user function with one of them is left out of the output, or it
/// would collide with ours a second time.
pub(crate) const CLASS_ITEMS: &[&str] = &["remote", "options"];

/// Checks a type used as an argument or a result: it must be owned (`'static`)
/// and nameable.
pub(crate) fn check_owned_type(cx: &Ctxt, ty: &Type, what: &str) {
    struct Finder<'a> {
        cx: &'a Ctxt,
        what: &'a str,
    }
    impl<'ast> Visit<'ast> for Finder<'_> {
        fn visit_type_reference(&mut self, r: &'ast syn::TypeReference) {
            self.cx.error_spanned_by(
                r,
                format!(
                    "{} of remote methods are moved into the call, so they must be owned: take an owned type (`String` for `&str`, `Vec<T>` for `&[T]`, `T` for `&T`)",
                    self.what
                ),
            );
        }
        fn visit_type_impl_trait(&mut self, t: &'ast syn::TypeImplTrait) {
            self.cx.error_spanned_by(
                t,
                format!(
                    "`impl Trait` cannot be used in {} of remote methods: name a concrete type",
                    self.what
                ),
            );
        }
        fn visit_type_infer(&mut self, t: &'ast syn::TypeInfer) {
            self.cx.error_spanned_by(
                t,
                format!(
                    "{} of remote methods need a concrete type, not `_`",
                    self.what
                ),
            );
        }
        fn visit_lifetime(&mut self, l: &'ast syn::Lifetime) {
            if l.ident != "static" {
                self.cx.error_spanned_by(
                    l,
                    format!(
                        "{} of remote methods must be `'static`: they cannot borrow",
                        self.what
                    ),
                );
            }
        }
    }
    Finder { cx, what }.visit_type(ty);
}

/// `Result<T, E>` (or a one-argument alias such as `io::Result<T>`): `T`.
pub(crate) fn result_ok_type(ty: &Type) -> Option<&Type> {
    let Type::Path(tp) = ty else { return None };
    if tp.qself.is_some() {
        return None;
    }
    let seg = tp.path.segments.last()?;
    if seg.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(ab) = &seg.arguments else {
        return None;
    };
    let types: Vec<&Type> = ab
        .args
        .iter()
        .filter_map(|a| match a {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        })
        .collect();
    match types.as_slice() {
        [ok] | [ok, _] => Some(ok),
        _ => None,
    }
}

/// Whether `ty` is `()`.
pub(crate) fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(t) if t.elems.is_empty())
}

/// Whether `ty` is `Self` or the class's own name.
pub(crate) fn is_self_type(ty: &Type, class: &syn::Ident) -> bool {
    let Type::Path(tp) = ty else { return false };
    tp.qself.is_none()
        && tp.path.leading_colon.is_none()
        && tp.path.segments.len() == 1
        && matches!(tp.path.segments[0].arguments, PathArguments::None)
        && (tp.path.segments[0].ident == "Self" || tp.path.segments[0].ident == *class)
}

/// Replaces `Self` in a type with the class type, so the type can be used in
/// the handle's impl (where `Self` is the handle).
pub(crate) fn replace_self(ty: &Type, class: &Type) -> Type {
    struct R<'a>(&'a Type);
    impl VisitMut for R<'_> {
        fn visit_type_mut(&mut self, t: &mut Type) {
            if let Type::Path(tp) = t {
                if tp.qself.is_none() && tp.path.is_ident("Self") {
                    *t = self.0.clone();
                    return;
                }
            }
            syn::visit_mut::visit_type_mut(self, t);
        }
        fn visit_path_mut(&mut self, p: &mut syn::Path) {
            if p.segments.len() > 1 && p.segments[0].ident == "Self" {
                if let Type::Path(ctp) = self.0 {
                    if let Some(last) = ctp.path.segments.last() {
                        p.segments[0].ident = last.ident.clone();
                    }
                }
            }
            syn::visit_mut::visit_path_mut(self, p);
        }
    }
    let mut ty = ty.clone();
    R(class).visit_type_mut(&mut ty);
    ty
}
