//! A rule's MITRE ATT&CK mapping, read from its Sigma `attack.*` tags (`attack.t1556.006`,
//! `attack.persistence`), for the formats that carry it as structured fields (OCSF, ECS).

/// ATT&CK tactics by the Sigma tag's name: (tag, id, name).
const TACTICS: [(&str, &str, &str); 14] = [
    ("reconnaissance", "TA0043", "Reconnaissance"),
    ("resource-development", "TA0042", "Resource Development"),
    ("initial-access", "TA0001", "Initial Access"),
    ("execution", "TA0002", "Execution"),
    ("persistence", "TA0003", "Persistence"),
    ("privilege-escalation", "TA0004", "Privilege Escalation"),
    ("defense-evasion", "TA0005", "Defense Evasion"),
    ("credential-access", "TA0006", "Credential Access"),
    ("discovery", "TA0007", "Discovery"),
    ("lateral-movement", "TA0008", "Lateral Movement"),
    ("collection", "TA0009", "Collection"),
    ("command-and-control", "TA0011", "Command and Control"),
    ("exfiltration", "TA0010", "Exfiltration"),
    ("impact", "TA0040", "Impact"),
];

/// One ATT&CK tactic: its id (`TA0003`) and name (`Persistence`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tactic {
    /// `TA` and four digits.
    pub id: &'static str,
    /// As ATT&CK writes it.
    pub name: &'static str,
}

/// What a rule's tags say of ATT&CK.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AttackMapping {
    /// Technique and sub-technique ids as ATT&CK writes them (`T1556`, `T1556.006`), in tag order.
    pub techniques: Vec<String>,
    /// The tactics named, in tag order.
    pub tactics: Vec<Tactic>,
}

impl AttackMapping {
    /// Reads the `attack.*` tags among `tags`; other tags, and tactic names ATT&CK does not
    /// have, are left out.
    pub fn from_tags(tags: &[String]) -> Self {
        let attack = tags.iter().filter_map(|tag| tag.strip_prefix("attack."));
        let mut mapping = AttackMapping::default();
        for tag in attack {
            let technique = tag
                .strip_prefix('t')
                .filter(|id| id.starts_with(|c: char| c.is_ascii_digit()));
            if technique.is_some() {
                mapping.techniques.push(tag.to_uppercase());
            } else if let Some((_, id, name)) = TACTICS.iter().find(|(known, _, _)| *known == tag) {
                mapping.tactics.push(Tactic { id, name });
            }
        }
        mapping
    }

    /// True when the tags named nothing of ATT&CK.
    pub fn is_empty(&self) -> bool {
        self.techniques.is_empty() && self.tactics.is_empty()
    }
}

/// The technique a (sub-)technique id belongs to: `T1556` for `T1556.006`, itself otherwise.
pub fn parent_technique(id: &str) -> &str {
    id.split_once('.').map_or(id, |(parent, _)| parent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn techniques_and_tactics_are_read_from_the_sigma_tags() {
        let tags: Vec<String> = [
            "attack.persistence",
            "attack.t1556.006",
            "attack.t1621",
            "attack.bogus",
            "cve.2024",
        ]
        .map(String::from)
        .to_vec();
        let mapping = AttackMapping::from_tags(&tags);
        assert_eq!(mapping.techniques, ["T1556.006", "T1621"]);
        assert_eq!(
            mapping.tactics,
            [Tactic {
                id: "TA0003",
                name: "Persistence"
            }]
        );
        assert_eq!(parent_technique("T1556.006"), "T1556");
        assert_eq!(parent_technique("T1621"), "T1621");
        assert!(AttackMapping::from_tags(&["cve.2024".into()]).is_empty());
    }
}
