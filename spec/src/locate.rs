//! Where the vectors are, found when the program runs rather than compiled in, so
//! that an installed `sluice-conform` (or one copied out of the build tree) finds
//! them without the source tree it was built from.
//!
//! The order: `--vectors`, then the environment variable
//! [`VECTORS_ENV`], then `spec/vectors` under the current directory or any of
//! its parents (a checkout, from wherever in it), then
//! `<directory of the executable>/../share/sluice/vectors` (an installed layout:
//! `bin/sluice-conform` beside `share/sluice/vectors`). A folder named explicitly
//! (the option or the variable) is the answer or an error: falling through to
//! another folder would replay vectors the caller did not ask for.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

/// The environment variable that names the vector folder.
pub const VECTORS_ENV: &str = "SLUICE_CONFORM_VECTORS";

/// Where the search may look, gathered by the caller (so that tests need neither
/// the process's environment nor its current directory).
#[derive(Clone, Debug, Default)]
pub struct SearchFrom {
    /// `--vectors`.
    pub explicit: Option<PathBuf>,
    /// The value of [`VECTORS_ENV`], when set and not empty.
    pub env: Option<OsString>,
    pub current_dir: Option<PathBuf>,
    pub executable: Option<PathBuf>,
}

impl SearchFrom {
    /// This process's environment, current directory and executable.
    pub fn process(explicit: Option<PathBuf>) -> SearchFrom {
        SearchFrom {
            explicit,
            env: std::env::var_os(VECTORS_ENV).filter(|value| !value.is_empty()),
            current_dir: std::env::current_dir().ok(),
            executable: std::env::current_exe().ok(),
        }
    }
}

/// No vector folder where one was looked for: every place tried, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotFound {
    pub tried: Vec<(String, PathBuf)>,
}

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no vector folder found; looked in:")?;
        for (why, path) in &self.tried {
            write!(f, "\n  {} ({why})", path.display())?;
        }
        write!(
            f,
            "\nname one with --vectors DIR or {VECTORS_ENV}=DIR, or run from a Sluice checkout"
        )
    }
}

impl std::error::Error for NotFound {}

/// The vector folder, searched in the order the module describes.
pub fn find_vectors_dir(from: &SearchFrom) -> Result<PathBuf, NotFound> {
    let mut tried = Vec::new();
    let explicit = [
        (from.explicit.clone(), "--vectors"),
        (from.env.clone().map(PathBuf::from), VECTORS_ENV),
    ];
    for (path, why) in explicit {
        if let Some(path) = path {
            if path.is_dir() {
                return Ok(path);
            }
            tried.push((format!("{why}: not a folder"), path));
            return Err(NotFound { tried });
        }
    }
    if let Some(current) = &from.current_dir {
        for dir in current.ancestors() {
            let candidate = dir.join("spec").join("vectors");
            if candidate.is_dir() {
                return Ok(candidate);
            }
        }
        tried.push((
            "spec/vectors under the current folder and its parents".to_string(),
            current.join("spec").join("vectors"),
        ));
    }
    if let Some(executable) = &from.executable
        && let Some(bin) = executable.parent()
    {
        let candidate = bin.join("..").join("share").join("sluice").join("vectors");
        if candidate.is_dir() {
            return Ok(candidate);
        }
        tried.push(("beside the executable".to_string(), candidate));
    }
    Err(NotFound { tried })
}

/// The folder [`find_vectors_dir`] finds for this process (without `--vectors`),
/// or, when none exists, the first place it tried, so that loading from it fails
/// with a message naming a path.
pub fn default_vectors_dir() -> PathBuf {
    match find_vectors_dir(&SearchFrom::process(None)) {
        Ok(dir) => dir,
        Err(not_found) => not_found
            .tried
            .into_iter()
            .next()
            .map_or_else(|| PathBuf::from("spec/vectors"), |(_, path)| path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch folder under the build's temporary directory, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let path = std::env::temp_dir().join(format!(
                "sluice-conform-locate-{name}-{}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            Scratch(path)
        }
        fn mkdir(&self, relative: &str) -> PathBuf {
            let path = self.0.join(relative);
            std::fs::create_dir_all(&path).unwrap();
            path
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn the_option_wins_then_the_variable() {
        let scratch = Scratch::new("explicit");
        let option = scratch.mkdir("option");
        let variable = scratch.mkdir("variable");
        let checkout = scratch.mkdir("checkout/spec/vectors");
        let from = SearchFrom {
            explicit: Some(option.clone()),
            env: Some(variable.clone().into_os_string()),
            current_dir: Some(scratch.0.join("checkout")),
            executable: None,
        };
        assert_eq!(find_vectors_dir(&from), Ok(option));
        let from = SearchFrom {
            explicit: None,
            ..from
        };
        assert_eq!(find_vectors_dir(&from), Ok(variable));
        let from = SearchFrom { env: None, ..from };
        assert_eq!(find_vectors_dir(&from), Ok(checkout));
    }

    #[test]
    fn a_named_folder_that_is_missing_is_an_error_not_a_fall_through() {
        let scratch = Scratch::new("missing");
        scratch.mkdir("checkout/spec/vectors");
        let from = SearchFrom {
            explicit: None,
            env: Some(scratch.0.join("typo").into_os_string()),
            current_dir: Some(scratch.0.join("checkout")),
            executable: None,
        };
        let error = find_vectors_dir(&from).unwrap_err();
        assert_eq!(error.tried.len(), 1);
        let text = error.to_string();
        assert!(
            text.contains("typo") && text.contains(VECTORS_ENV),
            "{text}"
        );
    }

    #[test]
    fn a_parent_of_the_current_folder_is_searched() {
        let scratch = Scratch::new("parent");
        let vectors = scratch.mkdir("repo/spec/vectors");
        let deep = scratch.mkdir("repo/net/src/store");
        let from = SearchFrom {
            current_dir: Some(deep),
            ..SearchFrom::default()
        };
        assert_eq!(find_vectors_dir(&from), Ok(vectors));
    }

    #[test]
    fn an_installed_layout_is_found_beside_the_executable() {
        let scratch = Scratch::new("installed");
        let vectors = scratch.mkdir("prefix/share/sluice/vectors");
        scratch.mkdir("prefix/bin");
        let elsewhere = scratch.mkdir("elsewhere");
        let from = SearchFrom {
            current_dir: Some(elsewhere),
            executable: Some(scratch.0.join("prefix/bin/sluice-conform")),
            ..SearchFrom::default()
        };
        let found = find_vectors_dir(&from).unwrap();
        assert_eq!(
            found.canonicalize().unwrap(),
            vectors.canonicalize().unwrap()
        );
    }

    #[test]
    fn nothing_found_names_every_place_tried() {
        let scratch = Scratch::new("nothing");
        let elsewhere = scratch.mkdir("elsewhere");
        let from = SearchFrom {
            current_dir: Some(elsewhere.clone()),
            executable: Some(scratch.0.join("bin/sluice-conform")),
            ..SearchFrom::default()
        };
        let error = find_vectors_dir(&from).unwrap_err();
        let text = error.to_string();
        assert_eq!(error.tried.len(), 2, "{text}");
        assert!(text.contains(&elsewhere.join("spec").join("vectors").display().to_string()));
        assert!(text.contains("share/sluice/vectors"), "{text}");
        assert!(text.contains("--vectors"), "{text}");
    }
}
