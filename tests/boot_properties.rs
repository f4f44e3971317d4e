//! Every manager attribute is a property of the Spring Boot starter: the attributes the native
//! core parses (`native/config.rs`), and the Tomcat-only ones of the README's configuration
//! table, against the fields of `MsmProperties` (whose names are the attributes' names, and which
//! Boot's configuration metadata describes).

use std::collections::BTreeSet;
use std::path::Path;

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The names in the core's `ATTRIBUTES` list.
fn core_attributes() -> BTreeSet<String> {
    let config = read("native/config.rs");
    let list = config
        .split("pub const ATTRIBUTES: &[&str] = &[")
        .nth(1)
        .expect("ATTRIBUTES in native/config.rs");
    let list = &list[..list.find("];").expect("end of ATTRIBUTES")];
    list.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The README's `(Tomcat only)` attributes, and Tomcat's own `persistAuthentication`.
fn tomcat_attributes() -> BTreeSet<String> {
    let mut names: BTreeSet<String> = read("README.md")
        .lines()
        .filter_map(|line| line.strip_prefix("| `")?.split_once("` (Tomcat only)"))
        .map(|(name, _)| name.to_owned())
        .collect();
    names.insert("persistAuthentication".to_owned());
    names
}

/// The fields of `MsmProperties`.
fn properties() -> BTreeSet<String> {
    read("java-shim/spring-boot-starter/src/main/java/io/msm/spring/boot/MsmProperties.java")
        .lines()
        .filter_map(|line| {
            let declaration = line.trim().strip_prefix("private ")?.strip_suffix(';')?;
            let (_, name) = declaration.rsplit_once(' ')?;
            Some(name.to_owned())
        })
        .collect()
}

#[test]
fn every_manager_attribute_is_a_starter_property_and_back() {
    let tomcat = tomcat_attributes();
    assert!(tomcat.contains("serializer"), "{tomcat:?}");
    let attributes: BTreeSet<String> = core_attributes().union(&tomcat).cloned().collect();
    let properties = properties();
    let missing: Vec<_> = attributes.difference(&properties).collect();
    let unknown: Vec<_> = properties.difference(&attributes).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "attributes without a property in MsmProperties: {missing:?}; properties that are no \
         attribute: {unknown:?}"
    );
}
