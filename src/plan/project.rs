//! The validated files a run needs: the main workflow, every workflow it calls
//! (transitively) and their lane registries, loaded and checked once before anything runs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::load::{Loaded, Loader, ReadError, sibling};
use crate::model::lanes::LaneRegistry;
use crate::model::step::{Step, StepKind};
use crate::model::workflow::Workflow;

/// A workflow with what it refers to.
#[derive(Debug, Clone)]
pub(crate) struct Unit {
    /// The file.
    pub path: PathBuf,
    /// The workflow.
    pub workflow: Arc<Workflow>,
    /// Its lane registry, if it names one.
    pub registry: Option<Arc<LaneRegistry>>,
    /// Its lifecycle and the lifecycle's roles, if it names one.
    pub lifecycle: Option<(Arc<crate::model::Lifecycle>, Option<Arc<crate::model::Roles>>)>,
    /// Its roles file, if it names one.
    pub roles: Option<Arc<crate::model::Roles>>,
}

/// Every workflow of a run, by path.
#[derive(Debug, Default)]
pub(crate) struct Project {
    units: HashMap<PathBuf, Unit>,
}

/// Why a project could not be loaded.
#[derive(Debug)]
pub(crate) enum ProjectError {
    /// The main file does not exist.
    Missing(PathBuf),
    /// Problems were found; they are in the loader's diagnostics.
    Invalid,
}

impl Project {
    /// Load and validate `main` and everything it calls.
    pub(crate) fn load(loader: &mut Loader, main: &Path) -> Result<(Project, PathBuf), ProjectError> {
        let mut project = Project::default();
        let main = crate::load::normalize(main);
        match loader.load(&main) {
            Err(ReadError::Missing) => return Err(ProjectError::Missing(main)),
            Err(ReadError::Reported) | Ok(None) => return Err(ProjectError::Invalid),
            Ok(Some(Loaded::Workflow(_))) => {}
            Ok(Some(other)) => {
                loader.report_range(
                    &crate::load::display(&main),
                    crate::load::yaml::Range::default(),
                    "kind",
                    format!("`runner run` needs a workflow; this is a {} file", other.kind().name()),
                    None,
                );
                return Err(ProjectError::Invalid);
            }
        }
        if !loader.diagnostics.is_empty() {
            return Err(ProjectError::Invalid);
        }
        project.add(loader, &main)?;
        Ok((project, main))
    }

    fn add(&mut self, loader: &mut Loader, path: &Path) -> Result<(), ProjectError> {
        if self.units.contains_key(path) {
            return Ok(());
        }
        let Ok(Some(Loaded::Workflow(workflow))) = loader.load(path) else {
            return Err(ProjectError::Invalid);
        };
        let registry = match &workflow.lanes {
            Some(relative) => match loader.load(&sibling(path, relative)) {
                Ok(Some(Loaded::Lanes(registry))) => Some(registry),
                _ => return Err(ProjectError::Invalid),
            },
            None => None,
        };
        let lifecycle = match &workflow.lifecycle {
            Some(relative) => {
                let target = sibling(path, relative);
                match loader.load(&target) {
                    Ok(Some(Loaded::Lifecycle(lifecycle))) => {
                        let roles = match &lifecycle.roles {
                            Some(r) => match loader.load(&sibling(&target, r)) {
                                Ok(Some(Loaded::Roles(roles))) => Some(roles),
                                _ => return Err(ProjectError::Invalid),
                            },
                            None => None,
                        };
                        Some((lifecycle, roles))
                    }
                    _ => return Err(ProjectError::Invalid),
                }
            }
            None => None,
        };
        let roles = match &workflow.roles {
            Some(relative) => match loader.load(&sibling(path, relative)) {
                Ok(Some(Loaded::Roles(roles))) => Some(roles),
                _ => return Err(ProjectError::Invalid),
            },
            None => None,
        };
        self.units.insert(
            path.to_path_buf(),
            Unit { path: path.to_path_buf(), workflow: workflow.clone(), registry, lifecycle, roles },
        );
        let mut calls = Vec::new();
        collect_calls(&workflow.steps, &mut calls);
        collect_calls(&workflow.finally, &mut calls);
        for target in calls {
            self.add(loader, &sibling(path, &target))?;
        }
        Ok(())
    }

    /// Every unit, in no particular order.
    pub(crate) fn units(&self) -> impl Iterator<Item = &Unit> {
        self.units.values()
    }

    /// The unit at `path`.
    pub(crate) fn unit(&self, path: &Path) -> Option<&Unit> {
        self.units.get(path)
    }
}

fn collect_calls(steps: &[Step], into: &mut Vec<String>) {
    for step in steps {
        if let StepKind::Call(call) = &step.kind {
            into.push(call.workflow.clone());
        }
        for child in step.children() {
            collect_calls(std::slice::from_ref(child), into);
        }
    }
}
