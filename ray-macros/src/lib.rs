//! Procedural macros of the `ray` actor framework. Use them through the `ray`
//! crate: `#[ray::actor]` on a struct and on its impl block, `#[method(..)]` on
//! methods inside that impl block.
//!
//! Each entry point is thin: parse, validate (collecting every error), expand,
//! and on error still emit the user's item next to the errors.

mod ast;
mod attr;
mod ctxt;
mod expand;
mod remote;
mod valid;

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::quote;

use crate::ctxt::Ctxt;

/// Declares an actor class (on a struct) or its remote methods (on the
/// struct's inherent impl block). See the `ray` crate's documentation.
#[proc_macro_attribute]
pub fn actor(args: TokenStream, input: TokenStream) -> TokenStream {
    actor_impl(args.into(), input.into()).into()
}

/// A remote function: `#[ray::remote] fn f(..) -> R` keeps `f` and adds a
/// module `f` with `f::remote(args..) -> ObjectRef<R>` (arguments: values or
/// refs) and `f::options().num_cpus(q).remote(..)`. Options:
/// `num_returns = N`, `num_cpus = q`, `num_gpus = q`, `resources(name = q)`,
/// `crate = "path"`.
#[proc_macro_attribute]
pub fn remote(args: TokenStream, input: TokenStream) -> TokenStream {
    remote::expand(args.into(), input.into()).into()
}

/// Options of one remote method: `#[method(num_returns = N)]`, or
/// `#[method(constructor)]` to pick the constructor. Only valid inside an
/// `#[ray::actor]` impl block.
#[proc_macro_attribute]
pub fn method(_args: TokenStream, input: TokenStream) -> TokenStream {
    let input: TokenStream2 = input.into();
    // The call site of an attribute macro is the attribute itself.
    let err = syn::Error::new(
        proc_macro2::Span::call_site(),
        "`#[method]` only works on a method inside an `#[ray::actor]` impl block: add `#[ray::actor]` to the `impl` block",
    )
    .to_compile_error();
    quote!(#err #input).into()
}

fn actor_impl(args: TokenStream2, input: TokenStream2) -> TokenStream2 {
    let item: syn::Item = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(e) => {
            let e = e.to_compile_error();
            return quote!(#e #input);
        }
    };
    let cx = Ctxt::default();
    let out = match &item {
        syn::Item::Struct(s) => {
            let attr = attr::parse_struct_attr(&cx, args);
            if s.generics.params.is_empty() {
                expand::StructGen {
                    item: s,
                    attr: &attr,
                }
                .generate()
            } else {
                // Generated items would name the struct without its
                // parameters: emit only the user's item.
                cx.error_spanned_by(
                    &s.generics,
                    "generic actors are not supported: remote methods need one concrete actor type",
                );
                quote!(#s)
            }
        }
        syn::Item::Impl(i) => {
            let attr = attr::parse_impl_attr(&cx, args);
            let krate = attr.krate.unwrap_or_else(|| syn::parse_quote!(::ray));
            match ast::ActorImpl::from_ast(&cx, i) {
                Some(model) => expand::ImplGen {
                    actor: &model,
                    krate,
                }
                .generate(),
                None => {
                    let stripped = expand::strip_method_attrs(i);
                    quote!(#stripped)
                }
            }
        }
        other => {
            cx.error_spanned_by(
                item_head(other),
                "`#[ray::actor]` goes on a struct (the actor's state) or on its inherent `impl` block (its remote methods)",
            );
            quote!(#other)
        }
    };
    let errors = cx.into_compile_errors();
    quote!(#errors #out)
}

fn item_head(item: &syn::Item) -> TokenStream2 {
    match item {
        syn::Item::Enum(e) => {
            let (t, i) = (&e.enum_token, &e.ident);
            quote!(#t #i)
        }
        syn::Item::Fn(f) => {
            let sig = &f.sig;
            quote!(#sig)
        }
        syn::Item::Trait(t) => {
            let (k, i) = (&t.trait_token, &t.ident);
            quote!(#k #i)
        }
        other => quote!(#other),
    }
}
