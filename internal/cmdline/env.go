package cmdline

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// envErrorAnnotation carries an environment fallback that did not parse;
// Parse reports it unless the flag itself is given.
const envErrorAnnotation = "hookrelay-env-error"

// Env reads an environment fallback: its value, and whether it is set and non-empty.
func Env(name string) (string, bool) {
	v, ok := os.LookupEnv(name)
	return v, ok && v != ""
}

func withEnv(usage, env string) string {
	if env == "" {
		return usage
	}
	return usage + " (env " + env + ")"
}

// String defines --name, defaulting to $env when set, else to def.
func String(fs *pflag.FlagSet, p *string, name, env, def, usage string) {
	if v, ok := Env(env); ok {
		def = v
	}
	fs.StringVar(p, name, def, withEnv(usage, env))
}

// Secret defines --name like String, but --help never shows the value
// taken from $env.
func Secret(fs *pflag.FlagSet, p *string, name, env, usage string) {
	fs.StringVar(p, name, "", withEnv(usage, env))
	if v, ok := Env(env); ok {
		*p = v
	}
}

// Bool defines --name, defaulting to $env (true or false) when set.
func Bool(fs *pflag.FlagSet, p *bool, name, env string, def bool, usage string) {
	def, bad := envValue(env, def, strconv.ParseBool)
	fs.BoolVar(p, name, def, withEnv(usage, env))
	if bad != "" {
		envError(fs, name, "--%s: %s=%q is not true or false", name, env, bad)
	}
}

// Int defines --name, defaulting to $env when set.
func Int(fs *pflag.FlagSet, p *int, name, env string, def int, usage string) {
	def, bad := envValue(env, def, strconv.Atoi)
	fs.IntVar(p, name, def, withEnv(usage, env))
	if bad != "" {
		envError(fs, name, "%s: %q is not a whole number", env, bad)
	}
}

// StringSlice defines --name, repeatable or comma-separated, defaulting to
// $env (comma-separated) when set.
func StringSlice(fs *pflag.FlagSet, p *[]string, name, env, usage string) {
	var def []string
	if v, ok := Env(env); ok {
		def = strings.Split(v, ",")
	}
	fs.StringSliceVar(p, name, def, withEnv(usage, env))
}

// Float64 defines --name, defaulting to $env when set.
func Float64(fs *pflag.FlagSet, p *float64, name, env string, def float64, usage string) {
	def, bad := envValue(env, def, func(v string) (float64, error) { return strconv.ParseFloat(v, 64) })
	fs.Float64Var(p, name, def, withEnv(usage, env))
	if bad != "" {
		envError(fs, name, "%s: %q is not a number", env, bad)
	}
}

// Duration defines --name, defaulting to $env (such as 30s) when set.
func Duration(fs *pflag.FlagSet, p *time.Duration, name, env string, def time.Duration, usage string) {
	def, bad := envValue(env, def, time.ParseDuration)
	fs.DurationVar(p, name, def, withEnv(usage, env))
	if bad != "" {
		envError(fs, name, "%s: %q is not a duration such as 30s", env, bad)
	}
}

// envValue is $env parsed, or def when $env is unset or empty; bad is a
// value set that does not parse (def is kept), for the flag's envError.
func envValue[T any](env string, def T, parse func(string) (T, error)) (value T, bad string) {
	v, ok := Env(env)
	if !ok {
		return def, ""
	}
	parsed, err := parse(v)
	if err != nil {
		return def, v
	}
	return parsed, ""
}

func envError(fs *pflag.FlagSet, name, format string, args ...any) {
	fs.SetAnnotation(name, envErrorAnnotation, []string{fmt.Sprintf(format, args...)})
}

// EnvEndpoints is the environment fallback of --endpoints.
const EnvEndpoints = "HOOKRELAY_ENDPOINTS"

// EndpointsFile defines --endpoints, the endpoints YAML file, for every
// command that reads endpoints.
func EndpointsFile(fs *pflag.FlagSet, p *string) {
	String(fs, p, "endpoints", EnvEndpoints, "", "endpoints YAML file")
}

// EnvEndpointsDB is the environment fallback of --endpoints-db.
const EnvEndpointsDB = "HOOKRELAY_ENDPOINTS_DB"

// EndpointsDB defines --endpoints-db, the endpoint registry's database, for
// every command that reads endpoints; it takes the place of --endpoints.
func EndpointsDB(fs *pflag.FlagSet, p *string) {
	String(fs, p, "endpoints-db", EnvEndpointsDB, "", "endpoint registry database: postgres://... or sqlite:PATH, in place of --endpoints")
}

// EnvLogDB is the environment fallback of --log-db.
const EnvLogDB = "HOOKRELAY_LOG_DB"

// LogDB defines --log-db, the delivery log's database, for every process
// that writes or reads the log; unset, the log is in the --endpoints-db
// database.
func LogDB(fs *pflag.FlagSet, p *string) {
	String(fs, p, "log-db", EnvLogDB, "", "delivery log database (postgres://... or sqlite:PATH); default: the --endpoints-db database")
}

// EndpointsCacheTTL defines --endpoints-cache-ttl: how stale a process's
// answers from the endpoint registry may be.
func EndpointsCacheTTL(fs *pflag.FlagSet, p *time.Duration) {
	Duration(fs, p, "endpoints-cache-ttl", "HOOKRELAY_ENDPOINTS_CACHE_TTL", 5*time.Second,
		"with --endpoints-db: an endpoint changed in the database reaches this process's attempts and routing within this long")
}

// OneEndpointsSource checks that exactly one of --endpoints and
// --endpoints-db is set (at most one unless required). A flag given on the
// command line wins over the other's environment variable, which is then
// cleared; both given, or neither where required, is a usage mistake.
func OneEndpointsSource(fs *pflag.FlagSet, file, db *string, required bool) error {
	if *file != "" && *db != "" {
		switch fileFlag, dbFlag := fs.Changed("endpoints"), fs.Changed("endpoints-db"); {
		case fileFlag && !dbFlag:
			*db = ""
		case dbFlag && !fileFlag:
			*file = ""
		default:
			return Usagef("--endpoints and --endpoints-db (or %s and %s): give one, not both", EnvEndpoints, EnvEndpointsDB)
		}
	}
	if required && *file == "" && *db == "" {
		return Usagef("--endpoints FILE or --endpoints-db DSN: one is required (or set %s or %s)", EnvEndpoints, EnvEndpointsDB)
	}
	return nil
}

// ShutdownTimeout defines --shutdown-timeout for a process that runs
// attempts, requests or both: how long those in flight may take to finish.
func ShutdownTimeout(fs *pflag.FlagSet, p *time.Duration) {
	fs.DurationVar(p, "shutdown-timeout", 30*time.Second, "on SIGINT/SIGTERM, how long attempts and requests in flight may take to finish")
}

// Endpoints are the flags that say where a command reads endpoints: the
// endpoints file, or the registry database with its cache's bound.
type Endpoints struct {
	File     string
	DB       string
	CacheTTL time.Duration
	// NoMigrate (--migrate=false): the process's databases are only checked
	// to be at this build's schema versions, never migrated.
	NoMigrate bool
	migrate   bool
}

// AddFlags defines --endpoints, --endpoints-db, --endpoints-cache-ttl and
// --migrate.
func (e *Endpoints) AddFlags(fs *pflag.FlagSet) {
	EndpointsFile(fs, &e.File)
	EndpointsDB(fs, &e.DB)
	EndpointsCacheTTL(fs, &e.CacheTTL)
	Migrate(fs, &e.migrate)
}

// EnvMigrate is the environment fallback of --migrate.
const EnvMigrate = "HOOKRELAY_MIGRATE"

// Migrate defines --migrate for a long-running process that opens
// hookrelay's databases: true migrates a schema behind this build's at
// start; false only checks, for a role without DDL privileges, and refuses
// to start naming the migrate command.
func Migrate(fs *pflag.FlagSet, p *bool) {
	Bool(fs, p, "migrate", EnvMigrate, true,
		"migrate the databases' schemas at start; false: only check they are current and refuse to start if not (run `starter migrate` as the owner role)")
}

// Check is OneEndpointsSource, and a positive cache bound.
func (e *Endpoints) Check(fs *pflag.FlagSet, required bool) error {
	if err := OneEndpointsSource(fs, &e.File, &e.DB, required); err != nil {
		return err
	}
	if e.CacheTTL <= 0 {
		return Usagef("--endpoints-cache-ttl: %s must be positive", e.CacheTTL)
	}
	e.NoMigrate = !e.migrate
	return nil
}
