// Package deploy checks hookrelay's deployment files without a Docker
// engine: docker-compose.yml and the Dockerfile at the repository root, the
// endpoint registry the stack uses (hookrelay's database in its PostgreSQL) and the script
// that generates the stack's secrets. It holds tests only; see docs/deployment.md,
// "Deploying with Docker Compose".
package deploy
