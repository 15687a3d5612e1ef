//! `hutch build`: the Containerfile's stages run step by step, each step
//! looked up in the build cache first, the stages a target needs built in
//! parallel where they do not depend on each other, and the target stage
//! written as an image (OCI manifest and config) and tagged.
//!
//! A step's cache key chains from its parent (see `cache_key`): the base
//! image's manifest digest (or scratch, or the stage it builds on), then
//! each step's key. A hit takes the config the step left and its layer;
//! a miss runs the step and records both. Completed steps stay in the
//! cache when a later step fails or the build is killed, so the next build
//! starts where this one stopped; the image and the tags are written only
//! when every step succeeded.
//!
//! The store's shared lock is held for the whole build, so gc never
//! removes a layer between its step and the cache entry that keeps it.

use super::add_source;
use super::cache_key::{Parent, StepInput, step_key};
use super::containerfile::ParseError;
use super::containerfile::instruction::{ArgDecl, Instruction, Step};
use super::containerfile::substitute::expand_word;
use super::context::ignore::Ignore;
use super::context::walk::Context;
use super::copy_layer::CopyOptions;
use super::copy_step;
use super::image_state::ImageState;
use super::metadata::{self, Scope};
use super::progress::Progress;
use super::run_step::{self, RunSettings};
use super::stage_tree;
use super::stages::{Base, FromRef, Stage, Stages};
use crate::error::ExitWith;
use crate::image::resolve::{Resolved, resolve as resolve_image};
use crate::oci::{Digest, TagRef, media};
use crate::profile::NetworkMode;
use crate::run::pull_policy::{PullPolicy, pull_first};
use crate::store::build_cache::{CachedStep, LayerBlob};
use crate::store::{Store, StoredImage};
use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

/// The ARGs every build knows without an ARG line; given with
/// `--build-arg`, they reach RUN's environment but no cache key, config
/// or history (Docker's rule).
const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// What `hutch build` was asked for.
#[derive(Debug, Clone)]
pub(crate) struct BuildOptions {
    pub(crate) context: PathBuf,
    /// `-f`; else `Containerfile`, else `Dockerfile`, in the context.
    pub(crate) file: Option<PathBuf>,
    pub(crate) tags: Vec<TagRef>,
    pub(crate) build_args: BTreeMap<String, String>,
    pub(crate) target: Option<String>,
    pub(crate) no_cache: bool,
    pub(crate) pull: PullPolicy,
    pub(crate) tls_verify: Option<bool>,
    pub(crate) network: NetworkMode,
    pub(crate) allow_host_loopback: bool,
    pub(crate) secrets: BTreeMap<String, PathBuf>,
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) quiet: bool,
    pub(crate) source_date_epoch: Option<i64>,
    /// Image references replaced before they are pulled or looked up
    /// (FROM and `--from` images): a project's lock pins them
    /// (`NAME:TAG` → `NAME@DIGEST`).
    pub(crate) pins: BTreeMap<String, String>,
    /// The Containerfile's name and text, instead of reading `file`.
    pub(crate) text: Option<(String, String)>,
}

/// The image a build made.
#[derive(Debug, Clone)]
pub(crate) struct Built {
    /// The image ID (config digest).
    pub(crate) id: Digest,
    /// Steps that ran and steps taken from the cache.
    pub(crate) ran: usize,
    pub(crate) cached: usize,
    /// Context files whose content was read (not known from the index).
    pub(crate) files_read: u64,
}

/// A finished stage.
struct StageOut {
    state: ImageState,
    /// The merged tree of the whole stage, made when a bind mount needs it.
    tree: Mutex<Option<PathBuf>>,
}

/// Shared by the stage threads.
struct Shared<'a> {
    store: &'a Store,
    opts: &'a BuildOptions,
    stages: &'a Stages,
    file_name: String,
    context: Context,
    context_path: PathBuf,
    ignore: Ignore,
    hasher: Mutex<super::cache_key::FileHasher>,
    progress: Progress,
    /// Step number of each stage's FROM.
    first_step: Vec<usize>,
    multi: bool,
    platform: String,
    proxy_env: Vec<String>,
    results: Mutex<BTreeMap<usize, std::result::Result<Arc<StageOut>, String>>>,
    ready: Condvar,
    counts: Mutex<(usize, usize)>,
    /// Temporary directories to remove at the end.
    tmp: Mutex<Vec<PathBuf>>,
    /// The images pulled (or looked up) so far.
    pulled: Mutex<BTreeSet<String>>,
}

/// Find the Containerfile.
fn containerfile(opts: &BuildOptions) -> Result<PathBuf> {
    if let Some(f) = &opts.file {
        return Ok(f.clone());
    }
    for name in ["Containerfile", "Dockerfile"] {
        let p = opts.context.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!(
        "no Containerfile or Dockerfile in {}; give one with -f FILE",
        opts.context.display()
    )
}

/// Run a build.
pub(crate) fn build(store: &Store, opts: &BuildOptions) -> Result<Built> {
    let file_path = match &opts.text {
        Some(_) => PathBuf::new(),
        None => containerfile(opts)?,
    };
    // `-f -`: the Containerfile on stdin.
    let stdin = file_path.as_os_str() == "-";
    let (file_name, text) = if let Some(given) = &opts.text {
        given.clone()
    } else if stdin {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("reading the Containerfile from standard input")?;
        ("<stdin>".to_string(), text)
    } else {
        let name = file_path.display().to_string();
        let text = std::fs::read_to_string(&file_path)
            .with_context(|| format!("reading the Containerfile {name}"))?;
        (name, text)
    };
    let at_file = |e: ParseError| match e.line {
        0 => anyhow!("{file_name}: {}", e.message),
        line => anyhow!("{file_name}:{line}: {}", e.message),
    };
    let parsed = super::containerfile::parse(&text).map_err(at_file)?;
    let stages = Stages::new(&parsed, &opts.build_args).map_err(at_file)?;
    let target = stages
        .target(opts.target.as_deref())
        .map_err(|e| anyhow!(e))?;
    let needed = stages.needed(target);
    let context_path = std::fs::canonicalize(&opts.context)
        .with_context(|| format!("opening the build context {}", opts.context.display()))?;
    let context = Context::open(&context_path).map_err(|e| anyhow!(e))?;
    let in_file = !stdin && opts.text.is_none();
    let ignore = Ignore::load(&context_path, in_file.then_some(file_path.as_path()))
        .map_err(|e| anyhow!(e))?;
    warn_unused_args(&parsed.steps, &stages, opts);
    tracing::debug!("ignore patterns: {:?}", ignore.patterns());

    let mut first_step = vec![0; stages.stages.len()];
    let mut total = 0;
    for &i in &needed {
        first_step[i] = total + 1;
        total += 1 + stages.stages[i].steps.len();
    }
    let proxy_env = PROXY_ARGS
        .iter()
        .filter_map(|k| opts.build_args.get(*k).map(|v| format!("{k}={v}")))
        .collect();
    let _lock = store.lock_shared()?;
    store.sweep_tmp();
    let shared = Shared {
        store,
        opts,
        stages: &stages,
        file_name,
        context,
        context_path: context_path.clone(),
        ignore,
        hasher: Mutex::new(super::cache_key::FileHasher::new(
            store.build_cache_load_files(&context_path),
        )),
        progress: Progress {
            quiet: opts.quiet,
            total,
        },
        first_step,
        multi: needed.len() > 1,
        platform: crate::oci::platform::Platform::host().to_string(),
        proxy_env,
        results: Mutex::new(BTreeMap::new()),
        ready: Condvar::new(),
        counts: Mutex::new((0, 0)),
        tmp: Mutex::new(Vec::new()),
        pulled: Mutex::new(BTreeSet::new()),
    };
    // Every needed stage in its own thread; a stage waits for those it
    // needs.
    std::thread::scope(|scope| {
        for &i in &needed {
            let shared = &shared;
            scope.spawn(move || {
                let out = build_stage(shared, &shared.stages.stages[i])
                    .map(|state| {
                        Arc::new(StageOut {
                            state,
                            tree: Mutex::new(None),
                        })
                    })
                    .map_err(|e| format!("{e:#}"));
                let mut r = shared.results.lock().unwrap_or_else(|p| p.into_inner());
                r.insert(i, out);
                shared.ready.notify_all();
            });
        }
    });
    for dir in shared
        .tmp
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .drain(..)
    {
        let _ = crate::store::remove::remove_tree(&dir);
    }
    let hasher = shared
        .hasher
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    let files_read = hasher.files_read();
    if let Err(e) = store.build_cache_save_files(&context_path, &hasher.into_index()) {
        tracing::warn!("saving the build context's file index: {e:#}");
    }
    let mut results = shared
        .results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    // The first failure in stage order is the build's (a failed RUN's
    // status travels in the text: `failure` rebuilds it).
    if let Some(e) = needed.iter().find_map(|i| match results.get(i) {
        Some(Err(e)) => Some(e.clone()),
        _ => None,
    }) {
        return Err(failure(e));
    }
    let out = match results.remove(&target) {
        Some(Ok(out)) => out,
        _ => bail!("internal error: the target stage has no result"),
    };
    let (ran, cached) = *shared.counts.lock().unwrap_or_else(|p| p.into_inner());
    let (id, manifest) = write_image(store, &out.state, opts)?;
    tracing::info!("built image {id}, manifest {manifest}");
    Ok(Built {
        id,
        ran,
        cached,
        files_read,
    })
}

/// A stage's error text back as an error, with a failed RUN's status.
fn failure(text: String) -> anyhow::Error {
    if let Some(rest) = text.strip_prefix("exit-status ")
        && let Some((code, message)) = rest.split_once(' ')
        && let Ok(code) = code.parse::<i32>()
    {
        return ExitWith {
            code,
            message: message.to_string(),
        }
        .into();
    }
    anyhow!(text)
}

/// Docker warns about --build-arg values no ARG declares.
fn warn_unused_args(steps: &[Step], stages: &Stages, opts: &BuildOptions) {
    let mut declared: BTreeSet<&str> = stages.global_declared.iter().map(String::as_str).collect();
    for s in steps {
        if let Instruction::Arg(decls) = &s.instruction {
            declared.extend(decls.iter().map(|d| d.name.as_str()));
        }
    }
    let unused: Vec<&str> = opts
        .build_args
        .keys()
        .map(String::as_str)
        .filter(|k| !declared.contains(k) && !PROXY_ARGS.contains(k))
        .collect();
    if !unused.is_empty() && !opts.quiet {
        eprintln!(
            "hutch: warning: --build-arg {} not used by any ARG of the Containerfile",
            unused.join(", ")
        );
    }
}

impl Shared<'_> {
    /// Wait for stage `i` to finish.
    fn wait(&self, i: usize) -> Result<Arc<StageOut>> {
        let mut r = self.results.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match r.get(&i) {
                Some(Ok(out)) => return Ok(out.clone()),
                Some(Err(_)) => bail!("stage {} failed", self.stages.stages[i].label()),
                None => r = self.ready.wait(r).unwrap_or_else(|p| p.into_inner()),
            }
        }
    }

    fn count(&self, ran: bool) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if ran { c.0 += 1 } else { c.1 += 1 }
    }

    fn created(&self) -> String {
        match self.opts.source_date_epoch {
            Some(e) => time::OffsetDateTime::from_unix_timestamp(e)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_else(|| "1970-01-01T00:00:00Z".into()),
            None => crate::store::refs::now_rfc3339(),
        }
    }

    fn tmp_dir(&self, what: &str) -> PathBuf {
        let p = self.store.tmp_path(what);
        self.tmp
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(p.clone());
        p
    }

    /// The image `name`, pulled as `--pull` says.
    fn image(&self, name: &str) -> Result<ImageState> {
        let name = self.opts.pins.get(name).map_or(name, String::as_str);
        // `--pull always` pulls each image once per build.
        let first = self
            .pulled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string());
        let policy = match self.opts.pull {
            PullPolicy::Always if !first => PullPolicy::Missing,
            p => p,
        };
        pull_first(self.store, name, policy, self.opts.tls_verify)?;
        match resolve_image(self.store, name)? {
            Resolved::Stored { image, .. } => ImageState::of_image(&image),
            Resolved::Host => bail!("`host` is not an image a build can start from"),
        }
    }

    /// The merged tree of a whole finished stage (for bind mounts).
    fn stage_tree(&self, out: &StageOut) -> Result<PathBuf> {
        let mut t = out.tree.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = &*t {
            return Ok(p.clone());
        }
        let dir = self.tmp_dir("build-stage");
        stage_tree::merge(&out.state.lowers(self.store)?, &["/".into()], &dir)?;
        *t = Some(dir.clone());
        Ok(dir)
    }
}

/// The cache key text of a parent, for `--from` in a step's text.
fn parent_text(p: &Parent) -> String {
    match p {
        Parent::Scratch => "scratch".into(),
        Parent::Image(d) => format!("image:{d}"),
        Parent::Step(d) => format!("step:{d}"),
    }
}

fn build_stage(shared: &Shared, stage: &Stage) -> Result<ImageState> {
    let label = stage.label();
    let shown = shared.multi.then_some(label.as_str());
    let mut n = shared.first_step[stage.index];
    shared.progress.step(n, shown, &stage.from.text);
    let mut state = match &stage.base {
        Base::Scratch => ImageState::scratch(),
        Base::Image(name) => shared
            .image(name)
            .with_context(|| format!("{}:{}: FROM {name}", shared.file_name, stage.from.line))?,
        Base::Stage(i) => {
            let mut s = shared.wait(*i)?.state.clone();
            s.cmd_set = false;
            s
        }
    };
    let escape = shared.stages.escape;
    let mut args: BTreeMap<String, String> = BTreeMap::new();
    for step in &stage.steps {
        n += 1;
        shared.progress.step(n, shown, &step.text);
        let at = |e: anyhow::Error| {
            // A failed RUN keeps its status.
            match e.downcast::<ExitWith>() {
                Ok(x) => anyhow!("exit-status {} {}", x.code, x.message),
                Err(e) => anyhow!("{}:{}: {e:#}", shared.file_name, step.line),
            }
        };
        let started = Instant::now();
        let ran = match &step.instruction {
            Instruction::Arg(decls) => {
                declare_args(shared, &mut args, decls, &state, escape).map_err(at)?;
                continue;
            }
            Instruction::From(_) => {
                return Err(at(anyhow!("internal error: FROM inside a stage")));
            }
            Instruction::Run(_) | Instruction::Copy(_) | Instruction::Add(_) => {
                layer_step(shared, stage, step, &mut state, &args).map_err(at)?
            }
            other => config_step(shared, other, &mut state, &args).map_err(at)?,
        };
        shared.count(ran);
        if ran {
            shared.progress.done(n, shown, started.elapsed());
        } else {
            shared.progress.cached(n, shown);
        }
    }
    Ok(state)
}

fn declare_args(
    shared: &Shared,
    args: &mut BTreeMap<String, String>,
    decls: &[ArgDecl],
    state: &ImageState,
    escape: char,
) -> Result<()> {
    for ArgDecl { name, default } in decls {
        let value = match shared.opts.build_args.get(name) {
            Some(v) => Some(v.clone()),
            None => match default {
                Some(d) => {
                    let scope = Scope::new(args, state, escape);
                    Some(
                        expand_word(d, escape, &scope)
                            .map_err(|e| anyhow!("ARG {name}: {e}"))?
                            .value,
                    )
                }
                None => shared.stages.global_args.get(name).cloned(),
            },
        };
        match value {
            Some(v) => args.insert(name.clone(), v),
            None => args.remove(name),
        };
    }
    Ok(())
}

/// ENV, LABEL, ...: the config changes and a history entry. Whether it
/// ran (false: taken from the cache).
fn config_step(
    shared: &Shared,
    instruction: &Instruction,
    state: &mut ImageState,
    args: &BTreeMap<String, String>,
) -> Result<bool> {
    let scope = Scope::new(args, state, shared.stages.escape);
    let mut next = state.clone();
    let applied = metadata::apply(&mut next, instruction, &scope).map_err(|e| anyhow!(e))?;
    let key = plain_key(shared, state, &applied.text, args, &applied.used);
    if let Some(hit) = lookup(shared, &key) {
        take_cached(state, hit, key);
        // The CMD flag is the stage's own, not the cache's.
        state.cmd_set = next.cmd_set;
        return Ok(false);
    }
    next.push_history(&shared.created(), &applied.text, true);
    record(shared, &key, &next, None)?;
    next.parent = Parent::Step(key);
    *state = next;
    Ok(true)
}

/// The key of a step on `state` with no files (all but COPY/ADD of
/// files).
fn plain_key(
    shared: &Shared,
    state: &ImageState,
    text: &str,
    args: &BTreeMap<String, String>,
    used: &BTreeSet<String>,
) -> Digest {
    step_key(&StepInput {
        parent: &state.parent,
        instruction: text,
        build_args: args,
        used,
        platform: &shared.platform,
        files: None,
        mtimes_in_layer: false,
        source_date_epoch: shared.opts.source_date_epoch,
    })
}

fn lookup(shared: &Shared, key: &Digest) -> Option<CachedStep> {
    if shared.opts.no_cache {
        None
    } else {
        // An entry whose config is not an object is damaged: a miss.
        shared
            .store
            .build_cache_lookup(key)
            .filter(|hit| hit.config.is_object())
    }
}

fn take_cached(state: &mut ImageState, hit: CachedStep, key: Digest) {
    state.config = hit.config;
    if let Some(blob) = hit.blob {
        state.layers.push(blob);
    }
    state.parent = Parent::Step(key);
}

fn record(
    shared: &Shared,
    key: &Digest,
    state: &ImageState,
    layer: Option<(&Digest, &LayerBlob)>,
) -> Result<()> {
    shared.store.build_cache_record(
        key,
        &CachedStep {
            diff_id: layer.map(|(d, _)| d.clone()),
            blob: layer.map(|(_, b)| b.clone()),
            config: state.config.clone(),
            created: crate::store::refs::now_rfc3339(),
        },
    )
}

/// RUN, COPY, ADD: a new layer (or an empty-layer history entry when the
/// step changed nothing). Whether it ran.
fn layer_step(
    shared: &Shared,
    stage: &Stage,
    step: &Step,
    state: &mut ImageState,
    args: &BTreeMap<String, String>,
) -> Result<bool> {
    let store = shared.store;
    let scope = Scope::new(args, state, shared.stages.escape);
    match &step.instruction {
        Instruction::Run(run) => {
            // Every ARG in scope is in RUN's environment, so in its key.
            let used: BTreeSet<String> = args.keys().cloned().collect();
            let mut text = format!("RUN {}", step.text.trim_start()[3..].trim_start());
            for h in &run.heredocs {
                text.push('\n');
                text.push_str(&h.body);
                text.push_str(&h.name);
            }
            // The history shows the RUN as written; the key also names the
            // stages its mounts take files from.
            let shown = text.clone();
            // What each `--mount=from=` names goes into the key; its files
            // are merged only when the step runs.
            enum MountSource {
                Stage(Arc<StageOut>),
                Image(ImageState),
            }
            let mut sources = Vec::new();
            for m in &run.mounts {
                if let Some(from) = &m.from {
                    let source = match shared.stages.resolve_from(from, stage.index, step.line)? {
                        FromRef::Stage(i) => MountSource::Stage(shared.wait(i)?),
                        FromRef::Image(name) => MountSource::Image(shared.image(&name)?),
                    };
                    let parent = match &source {
                        MountSource::Stage(out) => &out.state.parent,
                        MountSource::Image(img) => &img.parent,
                    };
                    text.push_str(&format!("\n--mount from {from} = {}", parent_text(parent)));
                    sources.push((from.clone(), source));
                }
            }
            let key = plain_key(shared, state, &text, args, &used);
            if let Some(hit) = lookup(shared, &key) {
                take_cached(state, hit, key);
                return Ok(false);
            }
            let mut stage_dirs = BTreeMap::new();
            for (from, source) in sources {
                let dir = match source {
                    MountSource::Stage(out) => shared.stage_tree(&out)?,
                    MountSource::Image(img) => {
                        let dir = shared.tmp_dir("build-image");
                        stage_tree::merge(&img.lowers(store)?, &["/".into()], &dir)?;
                        dir
                    }
                };
                stage_dirs.insert(from, dir);
            }
            let settings = RunSettings {
                store,
                network: shared.opts.network,
                allow_host_loopback: shared.opts.allow_host_loopback,
                secrets: &shared.opts.secrets,
                proxy_env: &shared.proxy_env,
                context: &shared.context_path,
            };
            let prepared = run_step::prepare(&settings, state, run, args, &stage_dirs)?;
            let _cleanup = RemoveDir(prepared.dir.clone());
            let output = if shared.opts.quiet {
                Some(
                    std::fs::File::options()
                        .create(true)
                        .truncate(true)
                        .read(true)
                        .write(true)
                        .open(prepared.dir.join("output"))
                        .context("creating the RUN's output file")?,
                )
            } else {
                None
            };
            let code = run_step::execute(&prepared, output.as_ref())?;
            if code != 0 {
                if shared.opts.quiet {
                    let text = std::fs::read(prepared.dir.join("output")).unwrap_or_default();
                    let _ = std::io::Write::write_all(&mut std::io::stderr(), &text);
                }
                return Err(ExitWith {
                    code,
                    message: format!(
                        "{}:{}: {}: the command exited with status {code}",
                        shared.file_name,
                        step.line,
                        crate::error::printable(step.text.lines().next().unwrap_or(""), 200)
                    ),
                }
                .into());
            }
            let upper = prepared.dir.join("upper");
            run_step::remove_mount_points(
                &upper,
                &prepared.spec.rootfs.lowers,
                &prepared.mount_points,
            );
            let tar = prepared.dir.join("layer.tar");
            let empty = run_step::changed_nothing(&upper, &prepared.spec.rootfs.lowers)?
                || write_upper_tar(
                    &upper,
                    &prepared.spec.rootfs.lowers,
                    &tar,
                    shared.opts.source_date_epoch,
                )? == 0;
            finish_layer(shared, state, &key, &shown, &tar, empty)?;
            Ok(true)
        }
        Instruction::Copy(copy) | Instruction::Add(copy) => {
            let keyword = step.instruction.keyword();
            let r = copy_step::resolve(keyword, copy, &scope, state, store)?;
            let options = CopyOptions {
                chown: r.chown,
                chmod: r.chmod,
                source_date_epoch: shared.opts.source_date_epoch,
                keep_owners: r.from.is_some(),
            };
            let dest = r.layer_dest(state, store);
            let workdir = state.field("WorkingDir").to_string();
            match &r.from {
                None => copy_sources(shared, state, args, keyword, &r, &dest, &workdir, &options),
                Some(from) => {
                    let (source, lowers) =
                        match shared.stages.resolve_from(from, stage.index, step.line)? {
                            FromRef::Stage(i) => {
                                let out = shared.wait(i)?;
                                (out.state.parent.clone(), out.state.lowers(store)?)
                            }
                            FromRef::Image(name) => {
                                let img = shared.image(&name).with_context(|| {
                                    format!(
                                        "{keyword} --from={from}: no earlier stage is named \
                                         {from}, so it names an image"
                                    )
                                })?;
                                (img.parent.clone(), img.lowers(store)?)
                            }
                        };
                    // The source is named by its key chain: the same
                    // chain has the same files.
                    let text = r.text(keyword, Some(&parent_text(&source)));
                    let key = plain_key(shared, state, &text, args, &r.used);
                    if let Some(hit) = lookup(shared, &key) {
                        take_cached(state, hit, key);
                        return Ok(false);
                    }
                    let tree = shared.tmp_dir("build-from");
                    stage_tree::merge(&lowers, &copy_step::source_prefixes(&r.sources), &tree)?;
                    let context = Context::open(&tree).map_err(|e| anyhow!(e))?;
                    let none = Ignore::parse("", None).map_err(|e| anyhow!(e))?;
                    let mut hasher = super::cache_key::FileHasher::new(Default::default());
                    let mut taken = copy_step::take(&context, &tree, &none, &r, &mut hasher)
                        .with_context(|| format!("{keyword} --from={from}"))?;
                    stage_tree::true_owners(&tree, &mut taken.selections);
                    let (tar, _) =
                        copy_step::write_layer(store, &context, &taken, &dest, &workdir, &options)?;
                    let _cleanup = RemoveDir(tar.clone());
                    let shown = r.text(keyword, Some(from));
                    finish_layer(shared, state, &key, &shown, &tar, false)?;
                    Ok(true)
                }
            }
        }
        other => bail!("internal error: {} makes no layer", other.keyword()),
    }
}

/// COPY/ADD of context files, here-documents or URLs. Whether it ran.
#[allow(clippy::too_many_arguments)]
fn copy_sources(
    shared: &Shared,
    state: &mut ImageState,
    args: &BTreeMap<String, String>,
    keyword: &str,
    r: &copy_step::Resolved,
    dest: &str,
    workdir: &str,
    options: &CopyOptions,
) -> Result<bool> {
    let store = shared.store;
    let mtime = shared.opts.source_date_epoch.unwrap_or(0);
    let key_of = |text: &str, files: Option<&[super::cache_key::FileFact]>| {
        step_key(&StepInput {
            parent: &state.parent,
            instruction: text,
            build_args: args,
            used: &r.used,
            platform: &shared.platform,
            files,
            // Clamped to the epoch in the key as in the layer.
            mtimes_in_layer: true,
            source_date_epoch: shared.opts.source_date_epoch,
        })
    };
    // Here-documents and downloads become files of a small context of
    // their own.
    let mut own: Option<(PathBuf, copy_step::Resolved)> = None;
    if !r.heredocs.is_empty() {
        let dir = shared.tmp_dir("build-heredoc");
        let mut names = Vec::new();
        for (name, body) in &r.heredocs {
            add_source::write_file(&dir, name, body.as_bytes(), 0o644, mtime)?;
            names.push(name.clone());
        }
        own = Some((
            dir,
            copy_step::Resolved {
                sources: names,
                ..r.clone()
            },
        ));
    } else if !r.urls.is_empty() {
        let text = r.text(keyword, None);
        // With --checksum the content is known before fetching it.
        let early_key = r.checksum.as_ref().map(|_| key_of(&text, None));
        if let Some(key) = &early_key
            && let Some(hit) = lookup(shared, key)
        {
            take_cached(state, hit, key.clone());
            return Ok(false);
        }
        let dir = shared.tmp_dir("build-download");
        let mut names = Vec::new();
        for url in &r.urls {
            let name = add_source::url_file_name(url)?;
            if names.contains(&name) {
                bail!("ADD: two URLs download to the same name {name}");
            }
            add_source::fetch(url, &dir, &name, r.checksum.as_ref(), mtime)?;
            names.push(name);
        }
        if let Some(key) = early_key {
            let context = Context::open(&dir).map_err(|e| anyhow!(e))?;
            let resolved = copy_step::Resolved {
                sources: names,
                ..r.clone()
            };
            let none = Ignore::parse("", None).map_err(|e| anyhow!(e))?;
            let mut hasher = super::cache_key::FileHasher::new(Default::default());
            let taken = copy_step::take(&context, &dir, &none, &resolved, &mut hasher)?;
            let (tar, _) = copy_step::write_layer(store, &context, &taken, dest, workdir, options)?;
            let _cleanup = RemoveDir(tar.clone());
            finish_layer(shared, state, &key, &text, &tar, false)?;
            return Ok(true);
        }
        own = Some((
            dir,
            copy_step::Resolved {
                sources: names,
                ..r.clone()
            },
        ));
    }
    let opened;
    let none;
    let (context, root, ignore, resolved) = match &own {
        Some((dir, resolved)) => {
            opened = Context::open(dir).map_err(|e| anyhow!(e))?;
            none = Ignore::parse("", None).map_err(|e| anyhow!(e))?;
            (&opened, dir.as_path(), &none, resolved)
        }
        None => (
            &shared.context,
            shared.context_path.as_path(),
            &shared.ignore,
            r,
        ),
    };
    let taken = if own.is_some() {
        let mut hasher = super::cache_key::FileHasher::new(Default::default());
        copy_step::take(context, root, ignore, resolved, &mut hasher)?
    } else {
        let mut hasher = shared.hasher.lock().unwrap_or_else(|p| p.into_inner());
        copy_step::take(context, root, ignore, resolved, &mut hasher)?
    };
    // ADD of local archives unpacks them.
    let mut archives = Vec::new();
    if keyword == "ADD" && own.is_none() {
        for sel in &taken.selections {
            for e in &sel.entries {
                if sel.matched.contains(&e.path) && e.kind == super::context::walk::Kind::File {
                    let host = root.join(&e.path);
                    if let Some(kind) = add_source::archive_kind(&host)? {
                        archives.push((host, kind));
                    }
                }
            }
        }
        let matched: usize = taken.selections.iter().map(|s| s.matched.len()).sum();
        if !archives.is_empty() && archives.len() != matched {
            bail!(
                "ADD: archives and other files in one instruction are not supported by \
                 hutch; use one ADD for the archives and a COPY for the rest"
            );
        }
    }
    let text = if archives.is_empty() {
        r.text(keyword, None)
    } else {
        r.text("ADD --unpack", None)
    };
    let key = key_of(&text, Some(&taken.facts));
    if let Some(hit) = lookup(shared, &key) {
        take_cached(state, hit, key);
        return Ok(false);
    }
    let tar = if archives.is_empty() {
        copy_step::write_layer(store, context, &taken, dest, workdir, options)?.0
    } else {
        let path = store.tmp_path("build-add");
        let file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let target = super::metadata::workdir(workdir, dest);
        let stamp = add_source::Stamp {
            chown: options.chown,
            chmod: options.chmod,
            source_date_epoch: options.source_date_epoch,
        };
        let written = add_source::write_archive_layer(
            &archives,
            &target,
            &stamp,
            std::io::BufWriter::new(file),
        );
        if let Err(e) = written {
            let _ = std::fs::remove_file(&path);
            return Err(e.context(format!("ADD: unpacking into {target}")));
        }
        path
    };
    let _cleanup = RemoveDir(tar.clone());
    finish_layer(shared, state, &key, &text, &tar, false)?;
    Ok(true)
}

/// The upper dir of a RUN (over the layer dirs `lowers`, top first) as a
/// layer tar at `tar`; the number of entries.
fn write_upper_tar(
    upper: &Path,
    lowers: &[PathBuf],
    tar: &Path,
    epoch: Option<i64>,
) -> Result<u64> {
    let file = std::fs::File::create(tar).with_context(|| format!("creating {}", tar.display()))?;
    let (out, stats) = crate::image::layer_tar::write_layer_tar_clamped(
        upper,
        lowers,
        epoch,
        std::io::BufWriter::new(file),
    )
    .context("archiving what the RUN changed")?;
    out.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|mut f| std::io::Write::flush(&mut f))
        .with_context(|| format!("writing {}", tar.display()))?;
    Ok(stats.entries)
}

/// Store the layer tar at `tar` (unless `empty`), add it and the history
/// entry to `state`, and record the step.
fn finish_layer(
    shared: &Shared,
    state: &mut ImageState,
    key: &Digest,
    text: &str,
    tar: &Path,
    empty: bool,
) -> Result<()> {
    let created = shared.created();
    if empty {
        state.push_history(&created, text, true);
        record(shared, key, state, None)?;
    } else {
        let file =
            std::fs::File::open(tar).with_context(|| format!("reading {}", tar.display()))?;
        let (blob, meta) = shared
            .store
            .ingest_layer_unknown(file, true)
            .context("storing the step's layer")?;
        let size = std::fs::metadata(shared.store.blob_path(&blob))
            .with_context(|| format!("reading the size of blob {blob}"))?
            .len();
        let desc = LayerBlob {
            digest: blob,
            size,
            media_type: media::OCI_LAYER_GZIP.into(),
        };
        state.push_layer(&meta.diff_id, desc.clone());
        state.push_history(&created, text, false);
        record(shared, key, state, Some((&meta.diff_id, &desc)))?;
    }
    state.parent = Parent::Step(key.clone());
    Ok(())
}

struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = crate::store::remove::remove_tree(&self.0);
    }
}

/// The target stage as an image: config (with `--label`s), OCI manifest,
/// the tags moved (with their history) or an untagged entry.
fn write_image(store: &Store, state: &ImageState, opts: &BuildOptions) -> Result<(Digest, Digest)> {
    let mut state = state.clone();
    for (k, v) in &opts.labels {
        let c = state.container();
        let labels = c.entry("Labels").or_insert_with(|| json!({}));
        if !labels.is_object() {
            *labels = json!({});
        }
        labels[k.as_str()] = json!(v);
    }
    let config_bytes = serde_json::to_vec(&state.config)?;
    let config_digest = store.put_blob(&config_bytes)?;
    let layers: Vec<serde_json::Value> = state
        .layers
        .iter()
        .map(|l| json!({"mediaType": l.media_type, "digest": l.digest, "size": l.size}))
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": config_digest, "size": config_bytes.len()},
        "layers": layers,
    });
    let manifest_digest = store.put_blob(&serde_json::to_vec(&manifest)?)?;
    let img = StoredImage::load(store, &manifest_digest).context("reading back the built image")?;
    store.update_refs(|r| {
        if opts.tags.is_empty() {
            r.add_untagged(&manifest_digest, "build");
        }
        for t in &opts.tags {
            r.set_tag(&t.to_string(), &manifest_digest, "build");
        }
        Ok(())
    })?;
    Ok((img.id().clone(), manifest_digest))
}
