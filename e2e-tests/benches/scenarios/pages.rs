//! `BENCH_LOOP=<scenario>:<who>-pages:1`: which 4 KiB pages of linear memory one fresh instance
//! writes, for one request (`who`: `ours`, `peer`, `doc-floor`).
//!
//! In the fresh-instance model every page a guest touches is a page fault and a page to release
//! when the instance is dropped (about 2.5 µs each on this machine, BENCHMARKS.md), so the pages
//! a request writes are a cost of their own. wasmtime-provider does not expose an instance's
//! memory, so this drives the module directly with the same wasmtime (re-exported by
//! wasmtime-provider) and a minimal waPC host: WASI preview 1 as wasmtime-provider links it,
//! `wapc_init`, one `__guest_call("validate")`, our lookup answered with the row's
//! ServiceAccount. It then compares the memory with its image right after instantiation (the
//! data segments) and prints the pages that differ, by region: the stack (below the stack
//! pointer's start), the data and bss (up to the initial memory size) and the heap (pages the
//! guest grew). A page only read, or written with the bytes it already held, is not seen: this
//! is a lower bound of the pages touched, exact for the stack and the heap in practice.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use wasmtime_provider::wasmtime::{
    Caller, Config, Engine, Extern, Linker, Memory, Module, ProfilingStrategy, Store,
};
use wasmtime_provider::wasmtime_wasi::p1::{self, WasiP1Ctx};
use wasmtime_provider::wasmtime_wasi::WasiCtxBuilder;

const PAGE: usize = 4096;

struct State {
    wasi: WasiP1Ctx,
    payload: Vec<u8>,
    answer: Option<Vec<u8>>,
    host_response: Vec<u8>,
    guest_response: Option<Result<Vec<u8>, String>>,
}

fn memory(caller: &mut Caller<'_, State>) -> Option<Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(memory)) => Some(memory),
        _ => None,
    }
}

fn read(caller: &mut Caller<'_, State>, ptr: i32, len: i32) -> Vec<u8> {
    let Some(memory) = memory(caller) else {
        return Vec::new();
    };
    let data = memory.data(&*caller);
    let start = ptr as u32 as usize;
    data.get(start..start + len as u32 as usize)
        .map(<[u8]>::to_vec)
        .unwrap_or_default()
}

fn write(caller: &mut Caller<'_, State>, ptr: i32, bytes: &[u8]) {
    if let Some(memory) = memory(caller) {
        // An out-of-bounds write is the guest's bug; the comparison below would show it.
        let _ = memory.write(&mut *caller, ptr as u32 as usize, bytes);
    }
}

/// A module compiled once, linked to the minimal waPC host.
struct Harness {
    engine: Engine,
    module: Module,
    linker: Linker<State>,
}

/// Memory snapshots of one fresh evaluation.
struct Snapshots {
    image: Vec<u8>,
    after_init: Vec<u8>,
    after: Vec<u8>,
}

impl Harness {
    fn new(wasm: &[u8], perf_map: bool) -> Result<Self> {
        let mut config = Config::new();
        if perf_map {
            config.profiler(ProfilingStrategy::PerfMap);
        }
        let engine = ok(Engine::new(&config))?;
        let module = ok(Module::new(&engine, wasm))?;
        let linker = linker(&engine)?;
        Ok(Self {
            engine,
            module,
            linker,
        })
    }

    /// One request on a fresh instance: instantiate, `wapc_init`, `validate`; with `snapshots`,
    /// copies of the memory after instantiation, after `wapc_init` and after the call.
    fn evaluate(
        &self,
        payload: &[u8],
        answer: Option<&[u8]>,
        snapshots: bool,
    ) -> Result<Option<Snapshots>> {
        let state = State {
            wasi: WasiCtxBuilder::new().build_p1(),
            payload: payload.to_vec(),
            answer: answer.map(<[u8]>::to_vec),
            host_response: Vec::new(),
            guest_response: None,
        };
        let mut store = Store::new(&self.engine, state);
        let instance = ok(self.linker.instantiate(&mut store, &self.module))?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .context("no exported memory")?;
        let copy = |store: &Store<State>| snapshots.then(|| memory.data(store).to_vec());
        let image = copy(&store);
        let init = ok(instance.get_typed_func::<(), ()>(&mut store, "wapc_init"))?;
        ok(init.call(&mut store, ()))?;
        let after_init = copy(&store);
        let call = ok(instance.get_typed_func::<(i32, i32), i32>(&mut store, "__guest_call"))?;
        let code = ok(call.call(&mut store, (8, payload.len() as i32)))?;
        match (code, store.data_mut().guest_response.take()) {
            (1, Some(Ok(_))) => {}
            (_, Some(Err(message))) => bail!("the guest failed: {message}"),
            (code, _) => bail!("the guest returned {code} without a response"),
        }
        Ok(match (image, after_init, copy(&store)) {
            (Some(image), Some(after_init), Some(after)) => Some(Snapshots {
                image,
                after_init,
                after,
            }),
            _ => None,
        })
    }
}

/// `n` fresh evaluations with wasmtime's perf map on (`/tmp/perf-<pid>.map`), for `perf record`
/// to name the guest's functions (give it a module with its name section).
pub fn profile(wasm: &[u8], payload: &[u8], account: Option<&Value>, n: usize) -> Result<()> {
    let harness = Harness::new(wasm, true)?;
    let answer = account.map(serde_json::to_vec).transpose()?;
    let start = std::time::Instant::now();
    for _ in 0..n {
        harness.evaluate(payload, answer.as_deref(), false)?;
    }
    println!("{n} fresh evaluations in {:?}", start.elapsed());
    Ok(())
}

/// Runs one request on a fresh instance and prints the pages it wrote.
pub fn report(wasm: &[u8], payload: &[u8], account: Option<&Value>) -> Result<()> {
    let harness = Harness::new(wasm, false)?;
    let answer = account.map(serde_json::to_vec).transpose()?;
    let Some(Snapshots {
        image,
        after_init,
        after,
    }) = harness.evaluate(payload, answer.as_deref(), true)?
    else {
        bail!("no memory snapshots");
    };
    let after = &after[..];
    let stack_top = first_global_init(wasm).unwrap_or(0);
    let initial_len = image.len();
    let pages = |from: &[u8]| -> Vec<usize> {
        (0..after.len().div_ceil(PAGE))
            .filter(|page| {
                let range = page * PAGE..((page + 1) * PAGE).min(after.len());
                let old = from.get(range.clone()).unwrap_or(&[]);
                let new = &after[range];
                if old.is_empty() {
                    new.iter().any(|&b| b != 0)
                } else {
                    old != new
                }
            })
            .collect()
    };
    let written = pages(&image);
    let by_call = pages(&after_init);
    println!(
        "memory: {} KiB at start, {} KiB after the call; stack top {stack_top:#x}",
        initial_len / 1024,
        after.len() / 1024
    );
    let region = |page: usize| {
        let at = page * PAGE;
        if at < stack_top {
            "stack"
        } else if at < initial_len {
            "data/bss"
        } else {
            "heap"
        }
    };
    for (what, list) in [("init and call", &written), ("the call alone", &by_call)] {
        let count = |name: &str| list.iter().filter(|&&p| region(p) == name).count();
        println!(
            "{what}: {} pages written: {} stack, {} data/bss, {} heap",
            list.len(),
            count("stack"),
            count("data/bss"),
            count("heap")
        );
    }
    let listed: Vec<String> = written
        .iter()
        .map(|&p| format!("{:#x} {}", p * PAGE, region(p)))
        .collect();
    println!("pages: {}", listed.join(", "));
    Ok(())
}

/// The waPC host functions and WASI preview 1, as wasmtime-provider links them.
fn linker(engine: &Engine) -> Result<Linker<State>> {
    let mut linker: Linker<State> = Linker::new(engine);
    ok(p1::add_to_linker_sync(&mut linker, |s: &mut State| {
        &mut s.wasi
    }))?;
    ok(linker.func_wrap(
        "wapc",
        "__guest_request",
        |mut c: Caller<'_, State>, op: i32, ptr: i32| {
            let payload = std::mem::take(&mut c.data_mut().payload);
            write(&mut c, op, b"validate");
            write(&mut c, ptr, &payload);
            c.data_mut().payload = payload;
        },
    ))?;
    ok(linker.func_wrap(
        "wapc",
        "__guest_response",
        |mut c: Caller<'_, State>, ptr: i32, len: i32| {
            let bytes = read(&mut c, ptr, len);
            c.data_mut().guest_response = Some(Ok(bytes));
        },
    ))?;
    ok(linker.func_wrap(
        "wapc",
        "__guest_error",
        |mut c: Caller<'_, State>, ptr: i32, len: i32| {
            let bytes = read(&mut c, ptr, len);
            c.data_mut().guest_response = Some(Err(String::from_utf8_lossy(&bytes).into()));
        },
    ))?;
    ok(linker.func_wrap(
        "wapc",
        "__host_call",
        |mut c: Caller<'_, State>,
         bd: i32,
         bd_len: i32,
         ns: i32,
         ns_len: i32,
         op: i32,
         op_len: i32,
         _ptr: i32,
         _len: i32|
         -> i32 {
            let call = [(bd, bd_len), (ns, ns_len), (op, op_len)]
                .map(|(p, l)| String::from_utf8_lossy(&read(&mut c, p, l)).into_owned());
            let answer = match call.each_ref().map(String::as_str) {
                ["kubewarden", "kubernetes", "get_resource"] => c.data().answer.clone(),
                ["kubewarden", "tracing", _] => Some(Vec::new()),
                _ => None,
            };
            match answer {
                Some(answer) => {
                    c.data_mut().host_response = answer;
                    1
                }
                None => 0,
            }
        },
    ))?;
    ok(linker.func_wrap(
        "wapc",
        "__host_response_len",
        |c: Caller<'_, State>| -> i32 { c.data().host_response.len() as i32 },
    ))?;
    ok(linker.func_wrap(
        "wapc",
        "__host_response",
        |mut c: Caller<'_, State>, ptr: i32| {
            let bytes = std::mem::take(&mut c.data_mut().host_response);
            write(&mut c, ptr, &bytes);
            c.data_mut().host_response = bytes;
        },
    ))?;
    ok(
        linker.func_wrap("wapc", "__host_error_len", |_: Caller<'_, State>| -> i32 {
            0
        }),
    )?;
    ok(linker.func_wrap("wapc", "__host_error", |_: Caller<'_, State>, _: i32| {}))?;

    Ok(linker)
}

/// wasmtime's own error type as an anyhow error.
fn ok<T>(result: wasmtime_provider::wasmtime::Result<T>) -> Result<T> {
    result.map_err(|e| anyhow::anyhow!("{e:?}"))
}

/// The initial value of the module's first global (the stack pointer in a Rust module).
fn first_global_init(wasm: &[u8]) -> Option<usize> {
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        if let Ok(wasmparser::Payload::GlobalSection(globals)) = payload {
            let global = globals.into_iter().next()?.ok()?;
            let mut ops = global.init_expr.get_operators_reader();
            if let Ok(wasmparser::Operator::I32Const { value }) = ops.read() {
                return Some(value as u32 as usize);
            }
        }
    }
    None
}
