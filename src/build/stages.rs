//! A Containerfile cut into stages: the global ARGs before the first FROM,
//! each FROM with the steps after it and its `AS` name, which other
//! stages a stage needs (`FROM stage`, `COPY --from=stage`,
//! `RUN --mount=from=stage`), and which stages a `--target` needs.
//!
//! A `--from` that names no stage is an image. Names are compared without
//! case, as Docker does; a stage may also be named by its index
//! (`COPY --from=0`), but only an `AS` name makes `FROM name` a stage.

use super::containerfile::instruction::{ArgDecl, Instruction, Step};
use super::containerfile::substitute::expand_word;
use super::containerfile::{Containerfile, ParseError};
use std::collections::{BTreeMap, BTreeSet};

/// One stage.
#[derive(Debug, Clone)]
pub(crate) struct Stage {
    pub(crate) index: usize,
    /// The `AS` name, lowercased.
    pub(crate) name: Option<String>,
    /// The FROM step.
    pub(crate) from: Step,
    /// What FROM's image word names, after substitution with the global
    /// ARGs.
    pub(crate) base: Base,
    /// The steps after FROM.
    pub(crate) steps: Vec<Step>,
    /// The stages this one needs first, by index.
    pub(crate) needs: BTreeSet<usize>,
}

impl Stage {
    /// How the stage is shown: its name, else its index.
    pub(crate) fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.index.to_string())
    }
}

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Base {
    Scratch,
    /// An earlier stage, by index.
    Stage(usize),
    /// An image reference as written (after substitution).
    Image(String),
}

/// A whole Containerfile as stages.
#[derive(Debug, Clone)]
pub(crate) struct Stages {
    /// The ARGs before the first FROM, with their values (the build arg,
    /// else the default, else unset).
    pub(crate) global_args: BTreeMap<String, String>,
    /// Every global ARG declared, set or not.
    pub(crate) global_declared: BTreeSet<String>,
    pub(crate) stages: Vec<Stage>,
    pub(crate) escape: char,
}

/// What `--from=X` (of COPY, ADD or a RUN mount) refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FromRef {
    Stage(usize),
    Image(String),
}

impl Stages {
    /// Cut `file` into stages, with `build_args` (`--build-arg`) setting
    /// the global ARGs.
    pub(crate) fn new(
        file: &Containerfile,
        build_args: &BTreeMap<String, String>,
    ) -> Result<Stages, ParseError> {
        let escape = file.directives.escape;
        let mut global_args = BTreeMap::new();
        let mut global_declared = BTreeSet::new();
        let mut stages: Vec<Stage> = Vec::new();
        for step in &file.steps {
            match (&step.instruction, stages.last_mut()) {
                (Instruction::From(from), _) => {
                    let image = expand_word(&from.image, escape, &global_args)
                        .map_err(|e| ParseError::new(step.line, format!("FROM: {e}")))?
                        .value;
                    if image.is_empty() {
                        return Err(ParseError::new(step.line, "FROM names no image"));
                    }
                    if let Some(p) = &from.platform {
                        let p = expand_word(p, escape, &global_args)
                            .map_err(|e| ParseError::new(step.line, format!("FROM: {e}")))?
                            .value;
                        check_platform(&p).map_err(|m| ParseError::new(step.line, m))?;
                    }
                    let name = from.alias.as_ref().map(|a| a.to_ascii_lowercase());
                    if let Some(n) = &name {
                        if stages.iter().any(|s| s.name.as_ref() == Some(n)) {
                            return Err(ParseError::new(
                                step.line,
                                format!(
                                    "a stage named {n:?} comes earlier; stage names are unique"
                                ),
                            ));
                        }
                        if n.parse::<usize>().is_ok() {
                            return Err(ParseError::new(
                                step.line,
                                format!("stage name {n:?}: a stage name is not a number"),
                            ));
                        }
                    }
                    let lower = image.to_ascii_lowercase();
                    let base = if lower == "scratch" {
                        Base::Scratch
                    } else if let Some(s) = stages.iter().find(|s| s.name.as_ref() == Some(&lower))
                    {
                        Base::Stage(s.index)
                    } else {
                        Base::Image(image)
                    };
                    let mut needs = BTreeSet::new();
                    if let Base::Stage(i) = base {
                        needs.insert(i);
                    }
                    stages.push(Stage {
                        index: stages.len(),
                        name,
                        from: step.clone(),
                        base,
                        steps: Vec::new(),
                        needs,
                    });
                }
                (Instruction::Arg(decls), None) => {
                    for ArgDecl { name, default } in decls {
                        global_declared.insert(name.clone());
                        let value = match build_args.get(name) {
                            Some(v) => Some(v.clone()),
                            None => match default {
                                Some(d) => Some(
                                    expand_word(d, escape, &global_args)
                                        .map_err(|e| {
                                            ParseError::new(step.line, format!("ARG {name}: {e}"))
                                        })?
                                        .value,
                                ),
                                None => None,
                            },
                        };
                        match value {
                            Some(v) => global_args.insert(name.clone(), v),
                            None => global_args.remove(name),
                        };
                    }
                }
                (other, None) => {
                    return Err(ParseError::new(
                        step.line,
                        format!(
                            "{} before the first FROM: only ARG may come before FROM",
                            other.keyword()
                        ),
                    ));
                }
                (_, Some(stage)) => stage.steps.push(step.clone()),
            }
        }
        if stages.is_empty() {
            return Err(ParseError::new(
                file.steps.last().map_or(1, |s| s.line),
                "no FROM: a Containerfile starts its first stage with FROM",
            ));
        }
        let mut out = Stages {
            global_args,
            global_declared,
            stages,
            escape,
        };
        // The stages each stage's --from flags name.
        for i in 0..out.stages.len() {
            let mut needs = out.stages[i].needs.clone();
            for step in &out.stages[i].steps {
                for from in from_flags(&step.instruction) {
                    if let FromRef::Stage(s) = out.resolve_from(from, i, step.line)? {
                        needs.insert(s);
                    }
                }
            }
            out.stages[i].needs = needs;
        }
        Ok(out)
    }

    /// What `--from=word` in stage `current` names: an earlier stage by
    /// name or index, else an image.
    pub(crate) fn resolve_from(
        &self,
        word: &str,
        current: usize,
        line: usize,
    ) -> Result<FromRef, ParseError> {
        let word = expand_word(word, self.escape, &self.global_args)
            .map_err(|e| ParseError::new(line, format!("--from: {e}")))?
            .value;
        let lower = word.to_ascii_lowercase();
        if let Ok(n) = lower.parse::<usize>() {
            if n >= current {
                return Err(ParseError::new(
                    line,
                    format!("--from={word}: stage {n} does not come before this one"),
                ));
            }
            return Ok(FromRef::Stage(n));
        }
        match self.stages.iter().find(|s| s.name.as_ref() == Some(&lower)) {
            Some(s) if s.index < current => Ok(FromRef::Stage(s.index)),
            Some(s) if s.index == current => Err(ParseError::new(
                line,
                format!("--from={word}: a stage cannot copy from itself"),
            )),
            Some(_) => Err(ParseError::new(
                line,
                format!("--from={word}: that stage comes later; name an earlier one"),
            )),
            None => Ok(FromRef::Image(word)),
        }
    }

    /// The index of the stage `--target` names (the last stage without it).
    pub(crate) fn target(&self, target: Option<&str>) -> Result<usize, String> {
        match target {
            None => Ok(self.stages.len() - 1),
            Some(t) => {
                let lower = t.to_ascii_lowercase();
                self.stages
                    .iter()
                    .find(|s| s.name.as_ref() == Some(&lower))
                    .map(|s| s.index)
                    .ok_or_else(|| {
                        let names: Vec<String> =
                            self.stages.iter().filter_map(|s| s.name.clone()).collect();
                        if names.is_empty() {
                            format!(
                                "--target {t}: the Containerfile names no stage (FROM ... AS NAME)"
                            )
                        } else {
                            format!(
                                "--target {t}: no stage of that name; the stages are {}",
                                names.join(", ")
                            )
                        }
                    })
            }
        }
    }

    /// The stages `target` needs, itself included, in index order.
    pub(crate) fn needed(&self, target: usize) -> Vec<usize> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![target];
        while let Some(i) = todo.pop() {
            if seen.insert(i) {
                todo.extend(self.stages[i].needs.iter().copied());
            }
        }
        seen.into_iter().collect()
    }
}

/// The `--from` values of an instruction (COPY/ADD, RUN mounts).
pub(crate) fn from_flags(instruction: &Instruction) -> Vec<&str> {
    match instruction {
        Instruction::Copy(c) | Instruction::Add(c) => c.from.as_deref().into_iter().collect(),
        Instruction::Run(r) => r.mounts.iter().filter_map(|m| m.from.as_deref()).collect(),
        _ => Vec::new(),
    }
}

/// hutch builds for the host only: `--platform` may name it (or
/// `$BUILDPLATFORM`/`$TARGETPLATFORM`, which are the host).
fn check_platform(p: &str) -> Result<(), String> {
    let host = crate::oci::platform::Platform::host();
    let host_text = host.to_string();
    if p.is_empty() || p == host_text || host_text.starts_with(&format!("{p}/")) {
        Ok(())
    } else {
        Err(format!(
            "FROM --platform={p}: hutch builds for this host's platform ({host_text}) only"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::containerfile::parse;

    fn stages(text: &str, args: &[(&str, &str)]) -> Result<Stages, ParseError> {
        let args = args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        // The parser refuses some files (RUN before FROM, no FROM) itself.
        Stages::new(&parse(text)?, &args)
    }

    #[test]
    fn global_args_name_the_base() {
        let s = stages("ARG V=1.36\nARG IMG=busybox:$V\nFROM $IMG\nRUN true\n", &[]).unwrap();
        assert_eq!(s.stages[0].base, Base::Image("busybox:1.36".into()));
        assert_eq!(s.stages[0].steps.len(), 1);
        let s = stages("ARG V=1.36\nFROM busybox:$V\n", &[("V", "2")]).unwrap();
        assert_eq!(s.stages[0].base, Base::Image("busybox:2".into()));
        assert_eq!(s.global_args.get("V").map(String::as_str), Some("2"));
    }

    #[test]
    fn stage_references_and_needs() {
        let text = "FROM busybox AS Build\nRUN x\nFROM scratch AS other\nFROM build AS b2\n\
                    COPY --from=1 /a /a\nFROM alpine\nCOPY --from=B2 /x /x\n\
                    COPY --from=docker.io/library/debian /y /y\n";
        let s = stages(text, &[]).unwrap();
        assert_eq!(s.stages[0].name.as_deref(), Some("build"));
        assert_eq!(s.stages[1].base, Base::Scratch);
        assert_eq!(s.stages[2].base, Base::Stage(0));
        assert_eq!(s.stages[2].needs, BTreeSet::from([0, 1]));
        assert_eq!(s.stages[3].needs, BTreeSet::from([2]));
        assert_eq!(s.needed(3), vec![0, 1, 2, 3]);
        assert_eq!(s.needed(1), vec![1]);
        assert_eq!(s.target(Some("B2")).unwrap(), 2);
        assert_eq!(s.target(None).unwrap(), 3);
        assert!(
            s.target(Some("nope"))
                .unwrap_err()
                .contains("build, other, b2")
        );
        assert_eq!(
            s.resolve_from("docker.io/library/debian", 3, 8).unwrap(),
            FromRef::Image("docker.io/library/debian".into())
        );
    }

    #[test]
    fn bad_files_are_refused_with_their_line() {
        let e = stages("RUN true\nFROM busybox\n", &[]).unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("before the first FROM"), "{e}");
        let e = stages("ARG A=1\n", &[]).unwrap_err();
        assert!(e.message.contains("no FROM"), "{e}");
        let e = stages("FROM a AS x\nFROM b AS X\n", &[]).unwrap_err();
        assert_eq!(e.line, 2);
        let e = stages("FROM a AS x\nCOPY --from=x /a /b\n", &[]).unwrap_err();
        assert!(e.message.contains("itself"), "{e}");
        let e = stages("FROM a\nCOPY --from=1 /a /b\nFROM b AS y\n", &[]).unwrap_err();
        assert!(e.message.contains("does not come before"), "{e}");
        let e = stages("FROM --platform=linux/s390x busybox\n", &[]).unwrap_err();
        assert!(e.message.contains("host's platform"), "{e}");
        // Control: the host's own platform is accepted.
        let host = crate::oci::platform::Platform::host().to_string();
        stages(&format!("FROM --platform={host} busybox\n"), &[]).unwrap();
    }
}
