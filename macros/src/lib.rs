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
//!
//! Each macro parses, checks (every mistake is a compile error spanned at its cause), then
//! generates code that names only `::tipc_runtime::__private`.

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
        return Err(Error::new(
            input.generics.span(),
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
    let mut found: Vec<(String, Span, Option<Expr>)> = Vec::new();
    let parser = syn::meta::parser(|m| {
        let key = m
            .path
            .get_ident()
            .map(|i| i.to_string())
            .unwrap_or_default();
        let span = m.path.span();
        // `key = value`, or a bare flag (`events`, `loopback`).
        let value: Option<Expr> = if m.input.peek(syn::Token![=]) {
            Some(m.value()?.parse()?)
        } else {
            None
        };
        found.push((key, span, value));
        Ok(())
    });
    if let Err(e) = parser.parse(args) {
        return e.to_compile_error().into();
    }
    let item = syn::parse_macro_input!(item as ItemImpl);
    match service(found, item) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
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
        other => Err(Error::new(
            other.span(),
            format!("{what} must be an integer literal"),
        )),
    }
}

fn service_args(args: Vec<(String, Span, Option<Expr>)>) -> Result<ServiceArgs, Error> {
    let mut type_: Option<u32> = None;
    let mut instance: Option<(u32, Span)> = None;
    let mut range: Option<(u32, u32, Span)> = None;
    let mut node_scope = false;
    let mut group: Option<Span> = None;
    let (mut events, mut loopback) = (false, false);
    for (key, span, value) in args {
        if matches!(key.as_str(), "events" | "loopback") {
            if let Some(v) = value {
                return Err(Error::new(
                    v.span(),
                    format!("`{key}` is a flag: write it alone"),
                ));
            }
            if key == "events" {
                events = true;
            } else {
                loopback = true;
            }
            continue;
        }
        let Some(value) = value else {
            return Err(Error::new(span, format!("expected `{key} = ...`")));
        };
        match key.as_str() {
            "type" | "group" => {
                if type_.is_some() {
                    return Err(Error::new(
                        span,
                        "give the service type once: `type = T` for a service, `group = T` for a group member",
                    ));
                }
                if key == "group" {
                    group = Some(span);
                }
                let t = int_of(&value, "the service type")?;
                if (t as u64) < FIRST_USER_TYPE {
                    return Err(Error::new(
                        value.span(),
                        "service types 0 to 63 are reserved by TIPC: use 64 or above",
                    ));
                }
                type_ = Some(t);
            }
            "instance" => {
                instance = Some((int_of(&value, "the instance")?, span));
            }
            "range" => {
                let Expr::Range(r) = &value else {
                    return Err(Error::new(value.span(), "expected `range = LOWER..=UPPER`"));
                };
                let (Some(lo), Some(hi)) = (&r.start, &r.end) else {
                    return Err(Error::new(
                        r.span(),
                        "the range needs both bounds: LOWER..=UPPER",
                    ));
                };
                if !matches!(r.limits, RangeLimits::Closed(_)) {
                    return Err(Error::new(
                        r.span(),
                        "service ranges are inclusive: write LOWER..=UPPER",
                    ));
                }
                let (lo, hi) = (
                    int_of(lo, "the lower bound")?,
                    int_of(hi, "the upper bound")?,
                );
                if lo > hi {
                    return Err(Error::new(
                        r.span(),
                        "the lower bound is above the upper bound",
                    ));
                }
                range = Some((lo, hi, span));
            }
            "scope" => {
                node_scope = match &value {
                    Expr::Path(p) if p.path.is_ident("node") => true,
                    Expr::Path(p) if p.path.is_ident("cluster") => false,
                    other => return Err(Error::new(other.span(), "scope is `node` or `cluster`")),
                };
            }
            _ => {
                return Err(Error::new(
                    span,
                    "unknown argument: expected `type`, `group`, `instance`, `range`, `scope`, `events` or `loopback`",
                ))
            }
        }
    }
    let Some(type_) = type_ else {
        return Err(Error::new(
            Span::call_site(),
            "a service needs its type: #[tipc_service(type = N, instance = I)] (or `group = T`)",
        ));
    };
    if group.is_none() && (events || loopback) {
        return Err(Error::new(
            Span::call_site(),
            "`events` and `loopback` are for group services (`group = T`)",
        ));
    }
    if let (Some(_), Some((_, _, span))) = (group, range) {
        return Err(Error::new(
            span,
            "a group member has one instance: `instance = I`, not a range",
        ));
    }
    let (lower, upper) = match (instance, range) {
        (Some(_), Some((_, _, span))) => {
            return Err(Error::new(
                span,
                "give either `instance` or `range`, not both",
            ))
        }
        (Some((i, _)), None) => (i, i),
        (None, Some((l, u, _))) => (l, u),
        (None, None) => {
            return Err(Error::new(
                Span::call_site(),
                "a service needs `instance = I` or `range = L..=U`",
            ))
        }
    };
    Ok(ServiceArgs {
        type_,
        lower,
        upper,
        node_scope,
        group: group.map(|_| (events, loopback)),
    })
}

/// A `#[handle]` method, as found.
struct Handler {
    name: syn::Ident,
    msg: Type,
    ctx: bool,
    reply_to: bool,
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
            if !matches!(a.meta, Meta::Path(_)) {
                err = Some(Error::new(
                    a.span(),
                    format!("#[{name}] takes no arguments"),
                ));
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

/// An `#[on_join]` / `#[on_leave]` method: `(&mut self, m: Member)` or with
/// `cx: &mut Ctx<Self>` after it; returns its name and whether it takes the context.
fn member_handler(f: &ImplItemFn, attr: &str) -> Result<(syn::Ident, bool), Error> {
    let sig = &f.sig;
    let usage = format!(
        "an #[{attr}] method takes (&mut self, member: Member), optionally `cx: &mut Ctx<Self>`, and returns nothing"
    );
    if sig.asyncness.is_some() || !sig.generics.params.is_empty() {
        return Err(Error::new(sig.span(), usage));
    }
    if let ReturnType::Type(_, t) = &sig.output {
        return Err(Error::new(t.span(), usage));
    }
    let mut inputs = sig.inputs.iter();
    if !matches!(inputs.next(), Some(FnArg::Receiver(r)) if r.reference.is_some()) {
        return Err(Error::new(sig.span(), usage));
    }
    let rest: Vec<&FnArg> = inputs.collect();
    match rest.as_slice() {
        [FnArg::Typed(m)] if is_last_segment(&m.ty, "Member") => Ok((sig.ident.clone(), false)),
        [FnArg::Typed(m), FnArg::Typed(c)]
            if is_last_segment(&m.ty, "Member") && is_last_segment(&c.ty, "Ctx") =>
        {
            Ok((sig.ident.clone(), true))
        }
        _ => Err(Error::new(sig.inputs.span(), usage)),
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
        return Err(Error::new(
            sig.generics.span(),
            "a #[handle] method cannot be generic",
        ));
    }
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() => {}
        _ => {
            return Err(Error::new(
                sig.span(),
                "a #[handle] method takes `&mut self` (or `&self`) first",
            ))
        }
    }
    let rest: Vec<&syn::PatType> = inputs
        .map(|a| match a {
            FnArg::Typed(t) => Ok(t),
            FnArg::Receiver(r) => Err(Error::new(r.span(), "unexpected receiver")),
        })
        .collect::<Result<_, _>>()?;
    let usage = "a #[handle] method takes (&mut self, msg: M), then optionally `cx: &mut Ctx<Self>`, then optionally `reply: ReplyTo<M::Reply>`";
    let Some((msg, rest)) = rest.split_first() else {
        return Err(Error::new(sig.span(), usage));
    };
    if is_last_segment(&msg.ty, "Ctx") || is_last_segment(&msg.ty, "ReplyTo") {
        return Err(Error::new(msg.ty.span(), usage));
    }
    if !matches!(&*msg.pat, Pat::Ident(_) | Pat::Wild(_)) {
        return Err(Error::new(msg.pat.span(), "bind the message to a name"));
    }
    let mut ctx = false;
    let mut reply_to = false;
    for (i, a) in rest.iter().enumerate() {
        if i == 0 && is_last_segment(&a.ty, "Ctx") {
            if !matches!(&*a.ty, Type::Reference(r) if r.mutability.is_some()) {
                return Err(Error::new(
                    a.ty.span(),
                    "the context is taken as `&mut Ctx<Self>`",
                ));
            }
            ctx = true;
        } else if !reply_to && is_last_segment(&a.ty, "ReplyTo") {
            reply_to = true;
        } else {
            return Err(Error::new(a.ty.span(), usage));
        }
    }
    if reply_to {
        if let ReturnType::Type(_, t) = &sig.output {
            return Err(Error::new(
                t.span(),
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

fn service(
    args: Vec<(String, Span, Option<Expr>)>,
    mut item: ItemImpl,
) -> Result<TokenStream2, Error> {
    let args = service_args(args)?;
    if let Some((_, path, _)) = &item.trait_ {
        return Err(Error::new(
            path.span(),
            "#[tipc_service] goes on the type's own impl block, not a trait impl",
        ));
    }
    if !item.generics.params.is_empty() {
        return Err(Error::new(
            item.generics.span(),
            "a service type cannot be generic",
        ));
    }
    let mut handlers = Vec::new();
    let mut on_join: Option<(syn::Ident, bool)> = None;
    let mut on_leave: Option<(syn::Ident, bool)> = None;
    for it in item.items.iter_mut() {
        if let ImplItem::Fn(f) = it {
            if take_attr(&mut f.attrs, "handle")? {
                handlers.push(handler(f)?);
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
                            format!("a second #[{attr}] method"),
                        ));
                    }
                    *slot = Some(member_handler(f, attr)?);
                }
            }
        }
    }
    if handlers.is_empty() {
        return Err(Error::new(
            item.self_ty.span(),
            "a service needs at least one #[handle] method",
        ));
    }
    let _ = &on_join;
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
        if handlers.len() != 1 || raw.reply_to {
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
    let arms = handlers.iter().map(|h| {
        let (name, msg) = (&h.name, &h.msg);
        let span = match &h.output {
            ReturnType::Type(_, t) => t.span(),
            ReturnType::Default => h.name.span(),
        };
        let ctx_arg = h.ctx.then(|| quote!(, cx));
        if h.reply_to {
            quote_spanned! {span=>
                if id == <#msg as #p::TipcMessage>::ID {
                    let m = match #p::decode_request::<#msg>(req) {
                        ::core::result::Result::Ok(m) => m,
                        ::core::result::Result::Err(o) => return o,
                    };
                    let reply = cx.reply_to::<<#msg as #p::TipcMessage>::Reply>();
                    self.#name(m #ctx_arg, reply);
                    return #p::Outcome::Deferred;
                }
            }
        } else {
            quote_spanned! {span=>
                if id == <#msg as #p::TipcMessage>::ID {
                    return #p::call::<#msg>(req, |m| -> <#msg as #p::TipcMessage>::Reply {
                        self.#name(m #ctx_arg)
                    });
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
                const _: () = {
                    let mut i = 0;
                    while i < IDS.len() {
                        let mut j = i + 1;
                        while j < IDS.len() {
                            if IDS[i] == IDS[j] {
                                panic!("two #[handle] methods take messages with the same id");
                            }
                            j += 1;
                        }
                        i += 1;
                    }
                };
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
