# Outputs of the complete example: what an operator needs next (endpoint,
# node slots for certificates and add-learner, the drill template).

output "client_endpoint" {
  description = "Where applications and the safekeep CLI connect."
  value       = module.safekeep.client_endpoint
}

output "nodes" {
  description = "Node slots: ids, zones, addresses, TLS secrets and backup prefixes."
  value       = module.safekeep.nodes
}

output "ca_secret_arn" {
  description = "Secret to write the CA bundle into."
  value       = module.safekeep.ca_secret_arn
}

output "fis_experiment_template_id" {
  description = "Template id of the zone drill."
  value       = module.safekeep.fis_experiment_template_id
}
