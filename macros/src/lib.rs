//! # tipc-macros
//!
//! The service layer's macros (use them through `tipc_runtime`, which re-exports them):
//!
//! * `#[derive(TipcMessage)]` with `#[tipc(id = N)]` and optionally `#[tipc(reply = T)]`
//!   (default `()`): a message type with a stable id.
//! * `#[tipc_service(type = T, instance = I | range = L..=U, scope = node | cluster)]` on the
//!   impl block of a service: its `#[handle]` methods, each taking `&mut self` (or `&self`),
//!   a message, optionally `cx: &mut Ctx<Self>`, and optionally `reply: ReplyTo<R>` (a
//!   deferred reply; the method then returns nothing), and returning the message's reply.
//! * `#[tipc_service(group = T, instance = I, events, loopback)]`: a member of a communication
//!   group, which may also have one `#[on_join]` and one `#[on_leave]` method taking
//!   `(&mut self, m: Member)`, optionally `cx: &mut Ctx<Self>` after it.
//!
//! Each macro parses, checks (every mistake is a compile error spanned at its cause), then
//! generates code that names only `::tipc_runtime::__private`. What only the compiler can
//! check is left to it, spanned at the cause too: a handler's answer against its message's
//! reply type (through `__private::Answers`, at the return type or the `ReplyTo<T>`), two
//! handled messages with one id (a const per pair, at the later handler's message type), a
//! message type without serde's derives (at the type). On an error, `#[tipc_service]` still
//! emits the impl block and a stand-in `Service` impl, so that errors it would cause (unused
//! imports, `Ctx<Self>` without a service) do not bury it. `runtime/tests/ui/` holds a
//! trybuild case for each error.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{
    Attribute, Data, DeriveInput, Error, Expr, ExprLit, FnArg, ImplItem, ImplItemFn, ItemImpl, Lit,
    Meta, Pat, RangeLimits, ReturnType, Type,
};

/// Service types below this are reserved (TIPC's rule).
const FIRST_USER_TYPE: u64 = 64;

/// `#[derive(TipcMessage)]`: implements `tipc_runtime::TipcMessage` with the id of
/// `#[tipc(id = N)]` and the reply type of `#[tipc(reply = T)]` (default `()`). The type must
/// also derive serde's `Serialize` and `Deserialize`.
#[proc_macro_derive(TipcMessage, attributes(tipc))]
pub fn derive_tipc_message(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as DeriveInput);
    match message(&input) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn message(input: &DeriveInput) -> Result<TokenStream2, Error> {
    if !input.generics.params.is_empty() {
        return Err(Error::new_spanned(
            &input.generics,
            "a TipcMessage cannot be generic: its id names one concrete type",
        ));
    }
    if let Data::Union(u) = &input.data {
        return Err(Error::new(
            u.union_token.span,
            "a TipcMessage must be a struct or an enum",
        ));
    }
    let mut id: Option<(u32, Span)> = None;
    let mut reply: Option<Type> = None;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("tipc")) {
        attr.parse_nested_meta(|m| {
            if m.path.is_ident("id") {
                let lit: syn::LitInt = m.value()?.parse()?;
                let v: u32 = lit.base10_parse().map_err(|_| {
                    Error::new(
                        lit.span(),
                        "the message id must be an integer from 0 to 4294967295",
                    )
                })?;
                if id.is_some() {
                    return Err(Error::new(lit.span(), "the message id is given twice"));
                }
                id = Some((v, lit.span()));
                Ok(())
            } else if m.path.is_ident("reply") {
                if reply.is_some() {
                    return Err(m.error("the reply type is given twice"));
                }
                reply = Some(m.value()?.parse()?);
                Ok(())
            } else {
                Err(m.error("unknown tipc attribute: expected `id = N` or `reply = Type`"))
            }
        })?;
    }
    let Some((id, id_span)) = id else {
        return Err(Error::new(
            input.ident.span(),
            "a TipcMessage needs a stable id: add #[tipc(id = N)] (never derived from the type's path)",
        ));
    };
    let name = &input.ident;
    let reply = reply.map_or_else(|| quote!(()), |t| quote!(#t));
    let id_lit = syn::LitInt::new(&format!("{id}u32"), id_span);
    Ok(quote! {
        impl ::tipc_runtime::__private::TipcMessage for #name {
            const ID: u32 = #id_lit;
            type Reply = #reply;
        }
    })
}

/// `#[tipc_service(...)]` on an impl block: implements `tipc_runtime::__private::Service`
/// (binding, message ids, dispatch) from its `#[handle]` methods.
#[proc_macro_attribute]
pub fn tipc_service(args: TokenStream, item: TokenStream) -> TokenStream {
    let all = TokenStream2::from(args.clone());
    let mut found: Vec<Arg> = Vec::new();
    let parser = syn::meta::parser(|m| {
        let key = m
            .path
            .get_ident()
            .map(|i| i.to_string())
            .unwrap_or_default();
        let path = &m.path;
        // `key = value`, or a bare flag (`events`, `loopback`).
        let (value, tokens) = if m.input.peek(syn::Token![=]) {
            let value: Expr = m.value()?.parse()?;
            let tokens = quote!(#path = #value);
            (Some(value), tokens)
        } else {
            (None, quote!(#path))
        };
        found.push(Arg { key, tokens, value });
        Ok(())
    });
    let item = syn::parse_macro_input!(item as ItemImpl);
    let result = match parser.parse(args) {
        Ok(()) => service(all, found, item.clone()),
        Err(e) => Err(e),
    };
    match result {
        Ok(ts) => ts.into(),
        Err(e) => with_item(e, item).into(),
    }
}

/// The error, followed by the impl block as written less the macro's own attributes and a
/// stand-in `Service` impl, so that a mistake in the macro's use is the one error reported
/// (the methods still exist, the imports they use are still used, `Ctx<Self>` and the code
/// that serves the type still find a service).
fn with_item(e: Error, mut item: ItemImpl) -> TokenStream2 {
    for it in item.items.iter_mut() {
        if let ImplItem::Fn(f) = it {
            f.attrs.retain(|a| {
                !["handle", "on_join", "on_leave"]
                    .iter()
                    .any(|name| a.path().is_ident(name))
            });
        }
    }
    let e = e.to_compile_error();
    let stand_in = (item.trait_.is_none() && item.generics.params.is_empty()).then(|| {
        let (p, self_ty) = (quote!(::tipc_runtime::__private), &item.self_ty);
        quote! {
            impl #p::Service for #self_ty {
                fn binding() -> #p::Binding {
                    ::core::unreachable!()
                }
                fn message_ids() -> &'static [u32] {
                    &[]
                }
                fn dispatch(&mut self, req: &#p::Request, _: &mut #p::Ctx<'_, Self>) -> #p::Outcome {
                    #p::unknown(req)
                }
            }
        }
    });
    quote!(#e #item #stand_in)
}

/// One argument of `#[tipc_service(...)]`: its name, its tokens (`key = value`, for errors
/// spanned at the whole argument) and its value (none for a flag).
struct Arg {
    key: String,
    tokens: TokenStream2,
    value: Option<Expr>,
}

/// An error spanned at `tokens`, or at the macro call when there are none.
fn error_at(tokens: &TokenStream2, message: &str) -> Error {
    if tokens.is_empty() {
        Error::new(Span::call_site(), message)
    } else {
        Error::new_spanned(tokens, message)
    }
}

/// Where the service binds, as parsed.
struct ServiceArgs {
    type_: u32,
    lower: u32,
    upper: u32,
    node_scope: bool,
    /// A group service: `(events, loopback)`.
    group: Option<(bool, bool)>,
}

fn int_of(e: &Expr, what: &str) -> Result<u32, Error> {
    match e {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse().map_err(|_| {
            Error::new(
                i.span(),
                format!("{what} must be an integer from 0 to 4294967295"),
            )
        }),
        other => Err(Error::new_spanned(
            other,
            format!("{what} must be an integer literal"),
        )),
    }
}

fn service_args(all: &TokenStream2, args: Vec<Arg>) -> Result<ServiceArgs, Error> {
    let mut type_: Option<u32> = None;
    let mut instance: Option<u32> = None;
    let mut range: Option<(u32, u32, TokenStream2)> = None;
    let mut node_scope = false;
    let mut group = false;
    let mut seen: Vec<String> = Vec::new();
    let (mut events, mut loopback): (Option<TokenStream2>, Option<TokenStream2>) = (None, None);
    for Arg { key, tokens, value } in args {
        const KNOWN: [&str; 7] = [
            "type", "group", "instance", "range", "scope", "events", "loopback",
        ];
        if !KNOWN.contains(&key.as_str()) {
            let path = tokens.into_iter().take_while(
                |t| !matches!(t, proc_macro2::TokenTree::Punct(p) if p.as_char() == '='),
            );
            let path: TokenStream2 = path.collect();
            return Err(Error::new_spanned(
                &path,
                format!("unknown argument `{path}`: expected `type`, `group`, `instance`, `range`, `scope`, `events` or `loopback`"),
            ));
        }
        if matches!(key.as_str(), "type" | "group")
            && seen.iter().any(|k| k == "type" || k == "group")
        {
            return Err(Error::new_spanned(
                tokens,
                "give the service type once: `type = T` for a service, `group = T` for a group member",
            ));
        }
        if seen.contains(&key) {
            return Err(Error::new_spanned(
                tokens,
                format!("`{key}` is given twice"),
            ));
        }
        seen.push(key.clone());
        if matches!(key.as_str(), "events" | "loopback") {
            if let Some(v) = value {
                return Err(Error::new_spanned(
                    v,
                    format!("`{key}` is a flag: write it alone"),
                ));
            }
            if key == "events" {
                events = Some(tokens);
            } else {
                loopback = Some(tokens);
            }
            continue;
        }
        let Some(value) = value else {
            return Err(Error::new_spanned(
                tokens,
                format!("expected `{key} = ...`"),
            ));
        };
        match key.as_str() {
            "type" | "group" => {
                group = key == "group";
                let t = int_of(&value, "the service type")?;
                if (t as u64) < FIRST_USER_TYPE {
                    return Err(Error::new_spanned(
                        value,
                        "service types 0 to 63 are reserved by TIPC: use 64 or above",
                    ));
                }
                type_ = Some(t);
            }
            "instance" => {
                instance = Some(int_of(&value, "the instance")?);
            }
            "range" => {
                let Expr::Range(r) = &value else {
                    return Err(Error::new_spanned(
                        value,
                        "expected `range = LOWER..=UPPER`",
                    ));
                };
                let (Some(lo), Some(hi)) = (&r.start, &r.end) else {
                    return Err(Error::new_spanned(
                        r,
                        "the range needs both bounds: LOWER..=UPPER",
                    ));
                };
                if let RangeLimits::HalfOpen(dots) = &r.limits {
                    return Err(Error::new_spanned(
                        dots,
                        "service ranges are inclusive: write LOWER..=UPPER",
                    ));
                }
                let (lo, hi) = (
                    int_of(lo, "the lower bound")?,
                    int_of(hi, "the upper bound")?,
                );
                if lo > hi {
                    return Err(Error::new_spanned(
                        r,
                        "the lower bound is above the upper bound",
                    ));
                }
                range = Some((lo, hi, tokens));
            }
            "scope" => {
                node_scope = match &value {
                    Expr::Path(p) if p.path.is_ident("node") => true,
                    Expr::Path(p) if p.path.is_ident("cluster") => false,
                    other => return Err(Error::new_spanned(other, "scope is `node` or `cluster`")),
                };
            }
            _ => unreachable!("unknown arguments are refused above"),
        }
    }
    let Some(type_) = type_ else {
        return Err(error_at(
            all,
            "a service needs its type: #[tipc_service(type = N, instance = I)] (or `group = T` for a group member)",
        ));
    };
    if !group {
        if let Some(flag) = events.as_ref().or(loopback.as_ref()) {
            return Err(Error::new_spanned(
                flag,
                format!("`{flag}` is for group services: write `group = T` instead of `type = T`"),
            ));
        }
    }
    if let (true, Some((_, _, tokens))) = (group, &range) {
        return Err(Error::new_spanned(
            tokens,
            "a group member has one instance: `instance = I`, not a range",
        ));
    }
    let (lower, upper) = match (instance, range) {
        (Some(_), Some((_, _, tokens))) => {
            return Err(Error::new_spanned(
                tokens,
                "give either `instance` or `range`, not both",
            ))
        }
        (Some(i), None) => (i, i),
        (None, Some((l, u, _))) => (l, u),
        (None, None) => {
            return Err(error_at(
                all,
                "a service needs `instance = I` or `range = L..=U`",
            ))
        }
    };
    Ok(ServiceArgs {
        type_,
        lower,
        upper,
        node_scope,
        group: group.then_some((events.is_some(), loopback.is_some())),
    })
}

/// A `#[handle]` method, as found.
struct Handler {
    name: syn::Ident,
    msg: Type,
    ctx: bool,
    /// It takes a `ReplyTo`: where that type is written.
    reply_to: Option<Span>,
    output: ReturnType,
}

fn is_last_segment(ty: &Type, name: &str) -> bool {
    let ty = match ty {
        Type::Reference(r) => &*r.elem,
        t => t,
    };
    matches!(ty, Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == name))
}

fn take_attr(attrs: &mut Vec<Attribute>, name: &str) -> Result<bool, Error> {
    let mut found = false;
    let mut err = None;
    attrs.retain(|a| {
        if a.path().is_ident(name) {
            let message = format!("#[{name}] takes no arguments: write `#[{name}]`");
            match &a.meta {
                Meta::Path(_) => {}
                Meta::List(l) => err = Some(Error::new(l.delimiter.span().join(), message)),
                Meta::NameValue(nv) => {
                    let (eq, value) = (&nv.eq_token, &nv.value);
                    err = Some(Error::new_spanned(quote!(#eq #value), message));
                }
            }
            found = true;
            false
        } else {
            true
        }
    });
    match err {
        Some(e) => Err(e),
        None => Ok(found),
    }
}

/// An error spanned at a method's arguments after `self` (or at its parentheses when it has
/// none).
fn args_error(sig: &syn::Signature, message: &str) -> Error {
    let args: Vec<&FnArg> = sig
        .inputs
        .iter()
        .filter(|a| matches!(a, FnArg::Typed(_)))
        .collect();
    if args.is_empty() {
        Error::new(sig.paren_token.span.join(), message)
    } else {
        Error::new_spanned(quote!(#(#args),*), message)
    }
}

/// An error spanned where a method's `self` should be: at its receiver (one taken by value),
/// or at its parentheses.
fn receiver_error(sig: &syn::Signature, message: &str) -> Error {
    match sig.inputs.first() {
        Some(FnArg::Receiver(r)) => Error::new_spanned(r, message),
        _ => Error::new(sig.paren_token.span.join(), message),
    }
}

/// An `#[on_join]` / `#[on_leave]` method: `(&mut self, m: Member)` or with
/// `cx: &mut Ctx<Self>` after it; returns its name and whether it takes the context.
fn member_handler(f: &ImplItemFn, attr: &str) -> Result<(syn::Ident, bool), Error> {
    let sig = &f.sig;
    let usage = format!(
        "an #[{attr}] method takes (&mut self, member: Member), optionally `cx: &mut Ctx<Self>`, and returns nothing"
    );
    if let Some(a) = &sig.asyncness {
        return Err(Error::new_spanned(a, usage));
    }
    if !sig.generics.params.is_empty() {
        return Err(Error::new_spanned(&sig.generics, usage));
    }
    if let ReturnType::Type(_, t) = &sig.output {
        return Err(Error::new_spanned(t, usage));
    }
    if !matches!(sig.inputs.first(), Some(FnArg::Receiver(r)) if r.reference.is_some()) {
        return Err(receiver_error(sig, &usage));
    }
    let rest: Vec<&FnArg> = sig.inputs.iter().skip(1).collect();
    match rest.as_slice() {
        [FnArg::Typed(m)] if is_last_segment(&m.ty, "Member") => Ok((sig.ident.clone(), false)),
        [FnArg::Typed(m), FnArg::Typed(c)]
            if is_last_segment(&m.ty, "Member") && is_last_segment(&c.ty, "Ctx") =>
        {
            Ok((sig.ident.clone(), true))
        }
        _ => Err(args_error(sig, &usage)),
    }
}

fn handler(f: &ImplItemFn) -> Result<Handler, Error> {
    let sig = &f.sig;
    if let Some(a) = &sig.asyncness {
        return Err(Error::new(
            a.span(),
            "a #[handle] method is synchronous: take `reply: ReplyTo<R>` and move it into `cx.spawn(async move { .. })` for async work",
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(Error::new_spanned(
            &sig.generics,
            "a #[handle] method cannot be generic",
        ));
    }
    if !matches!(sig.inputs.first(), Some(FnArg::Receiver(r)) if r.reference.is_some()) {
        return Err(receiver_error(
            sig,
            "a #[handle] method takes `&mut self` (or `&self`) first",
        ));
    }
    let rest: Vec<&syn::PatType> = sig
        .inputs
        .iter()
        .skip(1)
        .map(|a| match a {
            FnArg::Typed(t) => Ok(t),
            FnArg::Receiver(r) => Err(Error::new_spanned(r, "unexpected receiver")),
        })
        .collect::<Result<_, _>>()?;
    let usage = "a #[handle] method takes (&mut self, msg: M), then optionally `cx: &mut Ctx<Self>`, then optionally `reply: ReplyTo<M::Reply>`";
    let write = "write (&mut self, msg: M), then optionally `cx: &mut Ctx<Self>`, then optionally `reply: ReplyTo<M::Reply>`";
    let Some((msg, rest)) = rest.split_first() else {
        return Err(Error::new(
            sig.paren_token.span.join(),
            format!("this #[handle] method takes no message: {write}"),
        ));
    };
    if is_last_segment(&msg.ty, "Ctx") || is_last_segment(&msg.ty, "ReplyTo") {
        return Err(Error::new_spanned(
            msg,
            format!("the message comes first: {write}"),
        ));
    }
    if !matches!(&*msg.pat, Pat::Ident(_) | Pat::Wild(_)) {
        return Err(Error::new_spanned(&msg.pat, "bind the message to a name"));
    }
    let mut ctx = false;
    let mut reply_to = None;
    for (i, a) in rest.iter().enumerate() {
        if i == 0 && is_last_segment(&a.ty, "Ctx") {
            if !matches!(&*a.ty, Type::Reference(r) if r.mutability.is_some()) {
                return Err(Error::new_spanned(
                    &a.ty,
                    "the context is taken as `&mut Ctx<Self>`",
                ));
            }
            ctx = true;
        } else if reply_to.is_none() && is_last_segment(&a.ty, "ReplyTo") {
            reply_to = Some(a.ty.span());
        } else {
            return Err(Error::new_spanned(a, usage));
        }
    }
    if reply_to.is_some() {
        if let ReturnType::Type(_, t) = &sig.output {
            return Err(Error::new_spanned(
                t,
                "a handler that takes `ReplyTo` replies through it and returns nothing",
            ));
        }
    }
    Ok(Handler {
        name: sig.ident.clone(),
        msg: (*msg.ty).clone(),
        ctx,
        reply_to,
        output: sig.output.clone(),
    })
}

/// A type as written, for a message (`crate::Ping`, not `crate :: Ping`).
fn type_name(ty: &Type) -> String {
    quote!(#ty)
        .to_string()
        .replace(" :: ", "::")
        .replace(":: ", "::")
        .replace(" <", "<")
        .replace("< ", "<")
        .replace(" >", ">")
        .replace(" ,", ",")
}

fn service(all: TokenStream2, args: Vec<Arg>, mut item: ItemImpl) -> Result<TokenStream2, Error> {
    let args = service_args(&all, args)?;
    if let Some((_, path, _)) = &item.trait_ {
        return Err(Error::new_spanned(
            path,
            "#[tipc_service] goes on the type's own impl block, not a trait impl",
        ));
    }
    if !item.generics.params.is_empty() {
        return Err(Error::new_spanned(
            &item.generics,
            "a service type cannot be generic",
        ));
    }
    let mut handlers: Vec<Handler> = Vec::new();
    let mut on_join: Option<(syn::Ident, bool)> = None;
    let mut on_leave: Option<(syn::Ident, bool)> = None;
    for it in item.items.iter_mut() {
        if let ImplItem::Fn(f) = it {
            if take_attr(&mut f.attrs, "handle")? {
                let h = handler(f)?;
                let name = type_name(&h.msg);
                if let Some(other) = handlers.iter().find(|o| type_name(&o.msg) == name) {
                    return Err(Error::new_spanned(
                        &h.msg,
                        format!(
                            "`{name}` is handled twice: by `{}` and by `{}`",
                            other.name, h.name
                        ),
                    ));
                }
                handlers.push(h);
            }
            for (attr, slot) in [("on_join", &mut on_join), ("on_leave", &mut on_leave)] {
                if take_attr(&mut f.attrs, attr)? {
                    if args.group.is_none() {
                        return Err(Error::new(
                            f.sig.ident.span(),
                            format!("#[{attr}] is for group services: #[tipc_service(group = T, instance = I)]"),
                        ));
                    }
                    if slot.is_some() {
                        return Err(Error::new(
                            f.sig.ident.span(),
                            format!("a second #[{attr}] method: a service has at most one"),
                        ));
                    }
                    *slot = Some(member_handler(f, attr)?);
                }
            }
        }
    }
    if handlers.is_empty() {
        return Err(Error::new_spanned(
            &item.self_ty,
            "a service needs at least one #[handle] method",
        ));
    }
    let self_ty = &item.self_ty;
    let p = quote!(::tipc_runtime::__private);
    let group = match args.group {
        None => quote!(::core::option::Option::None),
        Some((events, loopback)) => {
            let events = events || on_join.is_some() || on_leave.is_some();
            quote!(::core::option::Option::Some(#p::GroupOpts { events: #events, loopback: #loopback }))
        }
    };
    let member_call = |h: &Option<(syn::Ident, bool)>| match h {
        Some((name, true)) => quote!(self.#name(m, cx)),
        Some((name, false)) => quote!(self.#name(m)),
        None => quote!({}),
    };
    let on_member = (on_join.is_some() || on_leave.is_some()).then(|| {
        let (j, l) = (member_call(&on_join), member_call(&on_leave));
        quote! {
            fn on_member(&mut self, event: #p::MemberEvent, cx: &mut #p::Ctx<'_, Self>) {
                let _ = &cx;
                match event {
                    #p::MemberEvent::Joined(m) => { let _ = &m; #j }
                    #p::MemberEvent::Left(m) => { let _ = &m; #l }
                }
            }
        }
    });
    let (t, lo, hi) = (args.type_, args.lower, args.upper);
    let scope = if args.node_scope {
        quote!(#p::Scope::Node)
    } else {
        quote!(#p::Scope::Cluster)
    };
    // A raw service: one handler taking `Raw` (no envelope; plain TIPC clients call it).
    if let Some(raw) = handlers.iter().find(|h| is_last_segment(&h.msg, "Raw")) {
        if handlers.len() != 1 || raw.reply_to.is_some() {
            return Err(Error::new(
                raw.msg.span(),
                "a raw service (a handler taking Raw) has that one #[handle] method, returning Option<Vec<u8>>",
            ));
        }
        let name = &raw.name;
        let ctx_arg = raw.ctx.then(|| quote!(, cx));
        let span = match &raw.output {
            ReturnType::Type(_, t) => t.span(),
            ReturnType::Default => raw.name.span(),
        };
        let call = quote_spanned! {span=>
            let reply: ::core::option::Option<::std::vec::Vec<u8>> = self.#name(msg #ctx_arg);
            reply
        };
        return Ok(quote! {
            #item

            impl #p::Service for #self_ty {
                fn binding() -> #p::Binding {
                    const RANGE: #p::ServiceRange = match #p::ServiceRange::new(#t, #lo, #hi) {
                        ::core::result::Result::Ok(r) => r,
                        ::core::result::Result::Err(_) => panic!("bad service range"),
                    };
                    #p::Binding { range: RANGE, scope: #scope, group: #group }
                }

                fn message_ids() -> &'static [u32] {
                    &[]
                }

                fn is_raw() -> bool {
                    true
                }

                #[allow(unused_variables)]
                fn dispatch_raw(&mut self, msg: #p::Raw, cx: &mut #p::Ctx<'_, Self>) -> ::core::option::Option<::std::vec::Vec<u8>> {
                    #call
                }

                fn dispatch(&mut self, req: &#p::Request, _cx: &mut #p::Ctx<'_, Self>) -> #p::Outcome {
                    #p::unknown(req)
                }

                #on_member
            }
        });
    }
    let msgs: Vec<&Type> = handlers.iter().map(|h| &h.msg).collect();
    // Two handlers' messages with one id: a const per pair, spanned at the later handler's
    // message type, whose evaluation fails naming both.
    let mut same_ids = Vec::new();
    for (j, b) in handlers.iter().enumerate() {
        for a in &handlers[..j] {
            let text = format!(
                "`{}` (taken by `{}`) has the same message id as `{}` (taken by `{}`): each message of a service needs its own #[tipc(id = N)]",
                type_name(&b.msg),
                b.name,
                type_name(&a.msg),
                a.name
            )
            .replace('{', "{{")
            .replace('}', "}}");
            let text = syn::LitStr::new(&text, b.msg.span());
            let (am, bm) = (&a.msg, &b.msg);
            same_ids.push(quote_spanned! {b.msg.span()=>
                const _: () = if <#am as #p::TipcMessage>::ID == <#bm as #p::TipcMessage>::ID {
                    ::core::panic!(#text)
                };
            });
        }
    }
    let arms = handlers.iter().map(|h| {
        let (name, msg) = (&h.name, &h.msg);
        let span = match &h.output {
            ReturnType::Type(_, t) => t.span(),
            ReturnType::Default => h.name.span(),
        };
        let ctx_arg = h.ctx.then(|| quote!(, cx));
        if let Some(reply_span) = h.reply_to {
            // The reply's type is inferred from the handler's `ReplyTo<T>`; `Answers` checks
            // that it is the message's reply type (reported at that `ReplyTo<T>`).
            let reply = quote_spanned! {reply_span=>
                <_ as #p::Answers<<#msg as #p::TipcMessage>::Reply>>::reply_to(cx)
            };
            quote_spanned! {span=>
                if id == <#msg as #p::TipcMessage>::ID {
                    let m = match #p::decode_request::<#msg>(req) {
                        ::core::result::Result::Ok(m) => m,
                        ::core::result::Result::Err(o) => return o,
                    };
                    let reply = #reply;
                    self.#name(m #ctx_arg, reply);
                    return #p::Outcome::Deferred;
                }
            }
        } else {
            // `Answers` checks that what the handler returns is the message's reply type
            // (reported at the handler's return type, or its name when it returns nothing; a
            // handler returning nothing is not passed as a unit argument).
            let reply = quote_spanned!(span=> <#msg as #p::TipcMessage>::Reply);
            let unit = match &h.output {
                ReturnType::Default => true,
                ReturnType::Type(_, t) => matches!(&**t, Type::Tuple(u) if u.elems.is_empty()),
            };
            let answer = match unit {
                true => quote_spanned! {span=>
                    self.#name(m #ctx_arg);
                    <() as #p::Answers<#reply>>::answer(())
                },
                false => quote_spanned! {span=>
                    <_ as #p::Answers<#reply>>::answer(self.#name(m #ctx_arg))
                },
            };
            quote_spanned! {span=>
                if id == <#msg as #p::TipcMessage>::ID {
                    return #p::call::<#msg>(req, |m| -> #reply { #answer });
                }
            }
        }
    });
    let n = msgs.len();
    Ok(quote! {
        #item

        impl #p::Service for #self_ty {
            fn binding() -> #p::Binding {
                const RANGE: #p::ServiceRange = match #p::ServiceRange::new(#t, #lo, #hi) {
                    ::core::result::Result::Ok(r) => r,
                    ::core::result::Result::Err(_) => panic!("bad service range"),
                };
                #p::Binding { range: RANGE, scope: #scope, group: #group }
            }

            fn message_ids() -> &'static [u32] {
                const IDS: [u32; #n] = [#(<#msgs as #p::TipcMessage>::ID),*];
                #(#same_ids)*
                &IDS
            }

            #on_member

            #[allow(unused_variables)]
            fn dispatch(&mut self, req: &#p::Request, cx: &mut #p::Ctx<'_, Self>) -> #p::Outcome {
                let id = req.id();
                #(#arms)*
                #p::unknown(req)
            }
        }
    })
}
