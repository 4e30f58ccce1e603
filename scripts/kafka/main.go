// Command kfake-broker runs franz-go's kfake, an in-process Kafka-protocol broker, as a
// standalone test broker for svc: a test or a newcomer starts it, reads the bootstrap
// addresses it prints on its first line of stdout, and stops it with SIGTERM (or kill -9).
//
// It is a test broker. Its data lives in memory unless -data-dir is given, and its "replicas"
// are one process: it proves protocol behaviour (idempotent producer, transactions, consumer
// groups, compaction), not durability or replication.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	brokers := flag.Int("brokers", 1, "brokers in the cluster (ignored when -ports is given)")
	ports := flag.String("ports", "", "comma-separated ports, one per broker (default: free ports)")
	compactEvery := flag.Duration("compaction-backoff", 5*time.Second, "how often compacted topics are cleaned (log.cleaner.backoff.ms)")
	minSession := flag.Duration("min-session-timeout", time.Second, "shortest consumer-group session timeout a member may ask for")
	partitions := flag.Int("default-partitions", 1, "partitions of an auto-created topic (topics are created with CreateTopics)")
	dataDir := flag.String("data-dir", "", "keep the cluster's state in this directory across restarts (default: memory only)")
	logLevel := flag.String("log-level", "none", "kfake's own log: none, error, warn, info, debug")
	flag.Parse()

	opts := []kfake.Opt{
		kfake.NumBrokers(*brokers),
		kfake.DefaultNumPartitions(*partitions),
		kfake.GroupMinSessionTimeout(*minSession),
		kfake.BrokerConfigs(map[string]string{"log.cleaner.backoff.ms": strconv.FormatInt(compactEvery.Milliseconds(), 10)}),
		kfake.WithLogger(kfake.BasicLogger(os.Stderr, level(*logLevel))),
	}
	if *ports != "" {
		var list []int
		for _, field := range strings.Split(*ports, ",") {
			port, err := strconv.Atoi(strings.TrimSpace(field))
			if err != nil || port < 0 || port > 65535 {
				fail("-ports: %q is not a port", field)
			}
			list = append(list, port)
		}
		opts = append(opts, kfake.Ports(list...))
	}
	if *dataDir != "" {
		opts = append(opts, kfake.DataDir(*dataDir))
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		fail("%v", err)
	}
	// The one line a caller waits for: every broker is listening.
	fmt.Println(strings.Join(cluster.ListenAddrs(), ","))

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	<-signals
	cluster.Close()
}

func level(name string) kfake.LogLevel {
	switch strings.ToLower(name) {
	case "debug":
		return kfake.LogLevelDebug
	case "info":
		return kfake.LogLevelInfo
	case "warn":
		return kfake.LogLevelWarn
	case "error":
		return kfake.LogLevelError
	case "none":
		return kfake.LogLevelNone
	}
	fail("-log-level: %q is not none, error, warn, info or debug", name)
	return kfake.LogLevelNone
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "kfake-broker: "+format+"\n", args...)
	os.Exit(2)
}
