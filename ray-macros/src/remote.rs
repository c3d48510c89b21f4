//! `#[ray::remote]` on a function: a module of the same name with
//! `remote(..)` and `options()`, next to the untouched function.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::parse::Parser;
use syn::{Expr, ExprLit, Ident, ItemFn, Lit};

use crate::ast::{check_fn_header, params, returns, Output};
use crate::attr::{crate_path, key, skip_value, ResourceOpts, MAX_NUM_RETURNS};
use crate::ctxt::{did_you_mean, Ctxt};
use crate::expand::{resource_setters, to_result};

const REMOTE_OPTIONS: &[&str] = &["num_returns", "num_cpus", "num_gpus", "resources", "crate"];

#[derive(Default)]
struct RemoteAttr {
    krate: Option<syn::Path>,
    num_returns: Option<usize>,
    resources: ResourceOpts,
}

fn parse_attr(cx: &Ctxt, args: TokenStream) -> RemoteAttr {
    let mut out = RemoteAttr::default();
    let parser = syn::meta::parser(|meta| {
        let k = key(&meta);
        match k.as_str() {
            "crate" => out.krate = crate_path(cx, &meta)?,
            "num_returns" => {
                let expr: Expr = meta.value()?.parse()?;
                match &expr {
                    Expr::Lit(ExprLit { lit: Lit::Int(i), .. }) => match i.base10_parse::<usize>() {
                        Ok(n) if n <= MAX_NUM_RETURNS => out.num_returns = Some(n),
                        _ => cx.error_spanned_by(
                            &expr,
                            format!("`num_returns` must be at most {MAX_NUM_RETURNS}; return a struct or a Vec to carry more"),
                        ),
                    },
                    _ => cx.error_spanned_by(
                        &expr,
                        "`num_returns` takes an integer literal: 0 (no ref), 1 (one ref) or N (an N-tuple of refs)",
                    ),
                }
            }
            _ if out.resources.parse(cx, &meta, &k)? => {}
            _ => {
                cx.error_spanned_by(
                    &meta.path,
                    format!(
                        "unknown remote function option `{k}`{}; valid options are: {}",
                        did_you_mean(&k, REMOTE_OPTIONS),
                        REMOTE_OPTIONS.join(", ")
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
    out
}

pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let cx = Ctxt::default();
    let func: ItemFn = match syn::parse2(input.clone()) {
        Ok(f) => f,
        Err(_) => {
            let err = syn::Error::new(
                Span::call_site(),
                "`#[ray::remote]` goes on a function: `#[ray::remote] fn f(..) -> R`",
            )
            .to_compile_error();
            return quote!(#err #input);
        }
    };
    let attr = parse_attr(&cx, args);
    check_fn_header(&cx, &func.sig, "remote functions");
    if let Some(r) = func.sig.receiver() {
        cx.error_spanned_by(r, "remote functions are free functions; for methods, use `#[ray::actor]` on the impl block");
    }
    let params = params(&cx, &func.sig, None);
    let num_returns = attr.num_returns.unwrap_or(1);
    let (output, elems) = returns(&cx, &func.sig, num_returns, None, "function");
    let errors = cx.count();
    let generated = if errors == 0 {
        generate(&func, &attr, &params, &output, &elems, num_returns)
    } else {
        TokenStream::new()
    };
    let errors = cx.into_compile_errors();
    quote!(#errors #func #generated)
}

fn generate(
    func: &ItemFn,
    attr: &RemoteAttr,
    params: &[crate::ast::Param],
    output: &Output,
    elems: &[syn::Type],
    num_returns: usize,
) -> TokenStream {
    let krate = attr
        .krate
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::ray));
    let ident = &func.sig.ident;
    let vis = &func.vis;
    let name = ident.to_string().trim_start_matches("r#").to_owned();
    let is_async = func.sig.asyncness.is_some();
    let names: Vec<&Ident> = params.iter().map(|p| &p.name).collect();
    let tys: Vec<&syn::Type> = params.iter().map(|p| &p.ty).collect();
    let payload = output.payload();
    let (kind, refs) = match num_returns {
        0 => (quote!(#krate::__private::Zero), quote!(())),
        1 => (
            quote!(#krate::__private::One<#payload>),
            quote!(#krate::__private::ObjectRef<#payload>),
        ),
        _ => (
            quote!(#krate::__private::Many<#payload>),
            quote!((#(#krate::__private::ObjectRef<#elems>,)*)),
        ),
    };
    let call = quote!(super::#ident(#(#names),*));
    let call = if is_async { quote!(#call.await) } else { call };
    let body = to_result(&krate, output, call);
    let invoke = Ident::new("__ray_invoke", Span::mixed_site());
    let result =
        quote!(#krate::__private::core::result::Result<#payload, #krate::__private::String>);
    let invoke_fn = if is_async {
        quote! {
            fn #invoke((#(#names,)*): (#(#tys,)*)) -> #krate::__private::BoxFuture<'static, #result> {
                #krate::__private::Box::pin(async move { #body })
            }
        }
    } else {
        quote! {
            fn #invoke((#(#names,)*): (#(#tys,)*)) -> #result {
                #body
            }
        }
    };
    let variant = if is_async {
        quote!(Async)
    } else {
        quote!(Sync)
    };
    let opts = attr.resources.apply(quote!(<#krate::__private::TaskOptions as #krate::__private::core::default::Default>::default()));
    let desc = Ident::new("__RAY_DESC", Span::mixed_site());
    let doc_mod = format!("Remote calls of [`{name}`](fn@{name}): `{name}::remote(..)` runs it as a task and returns refs at once.");
    let doc_remote = format!("Runs `{name}` as a remote task (arguments: values or refs) and returns refs to its result at once.");
    let options_ty = format_ident!("Options");
    let setters = resource_setters(
        &krate,
        "CPUs the call holds while it runs.",
        "the call holds while it runs",
    );
    quote! {
        #[doc = #doc_mod]
        #[allow(non_snake_case, clippy::module_name_repetitions)]
        #vis mod #ident {
            #[allow(unused_imports)]
            use super::*;

            static #desc: #krate::__private::FunctionDescriptor = #krate::__private::FunctionDescriptor::__new(
                #krate::__private::core::module_path!(),
                #name,
                #num_returns,
                #is_async,
            );

            #[doc = #doc_remote]
            #[allow(clippy::too_many_arguments, clippy::unused_unit)]
            pub fn remote(#(#names: impl #krate::__private::IntoArg<#tys>),*) -> #refs {
                options().remote(#(#names),*)
            }

            /// Starts a call with resource options; finish it with `.remote(..)`.
            pub fn options() -> #options_ty {
                #options_ty { __options: #opts }
            }

            /// Resource options of one call.
            #[must_use = "options do nothing until `.remote(..)` is called"]
            pub struct #options_ty {
                #[doc(hidden)]
                __options: #krate::__private::TaskOptions,
            }

            impl #options_ty {
                #setters
                #[doc = #doc_remote]
                #[allow(clippy::too_many_arguments, clippy::unused_unit)]
                pub fn remote(self, #(#names: impl #krate::__private::IntoArg<#tys>),*) -> #refs {
                    #invoke_fn
                    #krate::__private::submit_function::<_, #kind>(
                        &#desc,
                        self.__options,
                        (#(#krate::__private::IntoArg::<#tys>::into_arg(#names),)*),
                        #krate::__private::FnInvoke::#variant(#invoke),
                    )
                }
            }
        }
    }
}
