//! The service-map page's files, compiled into the binary: the page loads nothing from elsewhere.
//!
//! `web/index.html`, `web/app.js` and `web/style.css` are podflow's; `web/vendor/` holds the graph
//! library (Cytoscape.js with the fCoSE layout, MIT, minified by `web/vendor/update.sh` from the npm
//! registry, licences in `web/vendor/LICENSE`, served as `/assets/LICENSE.txt`).

/// A file the page is made of.
#[derive(Debug)]
pub struct Asset {
    /// Its name under `/assets/`.
    pub name: &'static str,
    /// Its media type.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
}

/// The page itself, served at `/`.
pub static INDEX: &Asset = &Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("web/index.html"),
};

const JS: &str = "text/javascript; charset=utf-8";

/// Every file under `/assets/`, in the order the page loads the scripts.
pub static ASSETS: &[Asset] = &[
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("web/style.css"),
    },
    Asset {
        name: "cytoscape.min.js",
        content_type: JS,
        body: include_bytes!("web/vendor/cytoscape.min.js"),
    },
    Asset {
        name: "layout-base.min.js",
        content_type: JS,
        body: include_bytes!("web/vendor/layout-base.min.js"),
    },
    Asset {
        name: "cose-base.min.js",
        content_type: JS,
        body: include_bytes!("web/vendor/cose-base.min.js"),
    },
    Asset {
        name: "cytoscape-fcose.min.js",
        content_type: JS,
        body: include_bytes!("web/vendor/cytoscape-fcose.min.js"),
    },
    Asset {
        name: "app.js",
        content_type: JS,
        body: include_bytes!("web/app.js"),
    },
    Asset {
        name: "LICENSE.txt",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("web/vendor/LICENSE"),
    },
];

/// The asset named `name`, if there is one.
pub fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_assets_that_exist_and_nothing_from_elsewhere() {
        let page = std::str::from_utf8(INDEX.body).unwrap();
        let mut loaded = 0;
        for part in page.split("/assets/").skip(1) {
            let name = part.split('"').next().unwrap();
            assert!(
                asset(name).is_some(),
                "the page loads /assets/{name}, which is not served"
            );
            loaded += 1;
        }
        assert_eq!(
            loaded,
            ASSETS.len() - 1,
            "every asset but the licence is loaded by the page"
        );
        for a in ASSETS.iter().chain([INDEX]) {
            let text = String::from_utf8_lossy(a.body);
            for remote in ["src=\"http", "href=\"http", "src=\"//", "@import"] {
                assert!(
                    !text.contains(remote),
                    "{} loads something from elsewhere ({remote})",
                    a.name
                );
            }
        }
    }
}
