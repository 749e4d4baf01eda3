//! Which nets a run trains side by side: the net of `arch`, its plain twin (`compare`) and
//! the architectures of `compareWith`, all on the same data order — decided here for the page
//! and the npm package alike.

use super::recipe::RunSpec;
use crate::model::NetConfig;

/// The most nets one run trains side by side: they step in turn, so each one more slows
/// every net down, and three is what one chart can still tell apart.
pub const MAX_NETS: usize = 3;

impl RunSpec {
    /// Every net of the run with its name, in the order they step.
    ///
    /// A single net is `"residual"` or `"plain"` and `compare` gives both (the names the
    /// page's sessions were saved under); with `compareWith`, each net is named by its
    /// architecture (`resnet20`, `plain20`, `preact_resnet20`, …). All nets get `classes`
    /// outputs; `shortcut` and `stridePlacement` apply to `arch` and its twin only.
    /// `compareWith` also takes DenseNets (DenseNet-BC, `densenet_bc100_12`), the successor
    /// that concatenates.
    pub fn nets(&self, classes: usize) -> Result<Vec<(String, NetConfig)>, crate::Error> {
        let model = self.model(classes)?;
        let mut nets: Vec<(String, NetConfig)> = match (self.compare, model) {
            (true, NetConfig::ResNet(model)) => vec![
                (
                    "residual".to_string(),
                    model.clone().with_residual(true).into(),
                ),
                ("plain".to_string(), model.with_residual(false).into()),
            ],
            (_, NetConfig::ResNet(model)) => {
                let name = if model.residual { "residual" } else { "plain" };
                vec![(name.to_string(), model.into())]
            }
            // RunSpec::model refuses `compare` for the other trees.
            (_, other) => vec![(other.name(), other)],
        };
        if self.compare_with.is_empty() {
            return Ok(nets);
        }
        for (name, config) in &mut nets {
            *name = config.name();
        }
        for other in &self.compare_with {
            let config = crate::model::network::parse(other)?.with_num_classes(classes);
            if let NetConfig::InceptionResNet(_) = config {
                return Err(crate::model::network::NotResNet::OtherTree(config.name()).into());
            }
            config.validate()?;
            let name = config.name();
            if nets.iter().any(|(n, _)| *n == name) {
                return Err(crate::Error::Other(format!(
                    "compareWith: {name} is already in the run"
                )));
            }
            nets.push((name, config));
        }
        if nets.len() > MAX_NETS {
            return Err(crate::Error::Other(format!(
                "a run trains at most {MAX_NETS} nets side by side, got {} ({})",
                nets.len(),
                nets.iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(nets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(spec: &RunSpec) -> Vec<String> {
        spec.nets(10)
            .unwrap()
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    }

    #[test]
    fn one_net_a_twin_or_up_to_three_architectures() {
        assert_eq!(names(&RunSpec::default()), ["residual"]);
        let twin = RunSpec {
            compare: true,
            ..RunSpec::default()
        };
        assert_eq!(names(&twin), ["residual", "plain"]);
        let nets = twin.nets(10).unwrap();
        let resnet = |i: usize| nets[i].1.resnet().unwrap().clone();
        assert!(resnet(0).residual && !resnet(1).residual);
        let family: RunSpec = serde_json::from_str(
            r#"{"arch":"resnet20","compareWith":["plain20","preact_resnet20"]}"#,
        )
        .unwrap();
        assert_eq!(names(&family), ["resnet20", "plain20", "preact_resnet20"]);
        let nets = family.nets(7).unwrap();
        assert!(nets.iter().all(|(_, c)| c.num_classes() == 7));
        let resnet = |i: usize| nets[i].1.resnet().unwrap().clone();
        assert!(resnet(2).preactivation() && !resnet(1).residual);
        // DenseNet-BC beside a ResNet and its plain twin; Inception-ResNet is refused.
        let dense = RunSpec {
            compare: true,
            compare_with: vec!["densenet_bc40_12".into()],
            ..RunSpec::default()
        };
        assert_eq!(names(&dense), ["resnet20", "plain20", "densenet_bc40_12"]);
        let err = RunSpec {
            compare_with: vec!["inception_resnet_v2".into()],
            ..RunSpec::default()
        }
        .nets(10)
        .unwrap_err()
        .to_string();
        assert!(err.contains("not of the ResNet tree"), "{err}");
    }

    #[test]
    fn duplicates_unknown_names_and_a_fourth_net_are_refused() {
        let spec = |compare, with: &[&str]| RunSpec {
            compare,
            compare_with: with.iter().map(|s| s.to_string()).collect(),
            ..RunSpec::default()
        };
        let err = spec(true, &["plain20"]).nets(10).unwrap_err().to_string();
        assert!(err.contains("plain20 is already in the run"), "{err}");
        let err = spec(false, &["resnet21"]).nets(10).unwrap_err().to_string();
        assert!(err.contains("unknown architecture 'resnet21'"), "{err}");
        let err = spec(true, &["wrn16_2", "preact_resnet20"])
            .nets(10)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("at most 3 nets side by side, got 4 (resnet20, plain20, wrn16_2"),
            "{err}"
        );
        assert_eq!(
            spec(true, &["wrn16_2"]).nets(10).unwrap().len(),
            3,
            "a twin and one more"
        );
    }
}
