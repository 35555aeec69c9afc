// Command porcupine-check is lockbench's independent checker: it reads the lock
// operations that `lockbench export --format porcupine` writes and asks
// Porcupine (github.com/anishathalye/porcupine) whether they are linearizable
// against a mutex model, one partition per key. It shares no code with
// lockbench's own checker, so the two can be held against each other.
//
// Usage: porcupine-check FILE   (prints "linearizable", "not linearizable" or
// "unknown"; exit status 0, 1 and 3; 2 for bad input)
package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/anishathalye/porcupine"
)

type op struct {
	Client int    `json:"client"`
	Key    string `json:"key"`
	F      string `json:"f"`
	Result string `json:"result"`
	Call   int64  `json:"call"`
	Return *int64 `json:"return"`
}

type input struct {
	client int
	key    string
	f      string
}

// The mutex: the state is the client that holds the key, or -1.
//
//	acquire ok    needs the key free, and takes it
//	acquire fail  needs the key held by someone (the client was refused)
//	release ok    needs the key held by this client, and frees it
//	release fail  needs the key not held by this client
//	error         did nothing, in any state
//	unknown       may have taken effect, or not: both next states
var model = (&porcupine.NondeterministicModel{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, o := range history {
			k := o.Input.(input).key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], o)
		}
		var out [][]porcupine.Operation
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() []interface{} { return []interface{}{-1} },
	Step: func(state, in, out interface{}) []interface{} {
		holder := state.(int)
		i := in.(input)
		res := out.(string)
		next := func(ok bool, s int) []interface{} {
			if ok {
				return []interface{}{s}
			}
			return nil
		}
		switch {
		case res == "error":
			return next(true, holder)
		case res == "unknown" && i.f == "acquire" && holder == -1:
			return []interface{}{holder, i.client}
		case res == "unknown" && i.f == "release" && holder == i.client:
			return []interface{}{holder, -1}
		case res == "unknown":
			return next(true, holder)
		case i.f == "acquire" && res == "ok":
			return next(holder == -1, i.client)
		case i.f == "acquire":
			return next(holder != -1, holder)
		case res == "ok":
			return next(holder == i.client, -1)
		default:
			return next(holder != i.client, holder)
		}
	},
	DescribeOperation: func(in, out interface{}) string {
		i := in.(input)
		return fmt.Sprintf("client %d %s %s: %s", i.client, i.f, i.key, out.(string))
	},
}).ToModel()

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: porcupine-check FILE")
		os.Exit(2)
	}
	data, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var ops []op
	if err := json.Unmarshal(data, &ops); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", os.Args[1], err)
		os.Exit(2)
	}
	history := make([]porcupine.Operation, 0, len(ops))
	for _, o := range ops {
		ret := int64(math.MaxInt64)
		if o.Return != nil {
			ret = *o.Return
		}
		history = append(history, porcupine.Operation{
			ClientId: o.Client,
			Input:    input{client: o.Client, key: o.Key, f: o.F},
			Call:     o.Call,
			Output:   o.Result,
			Return:   ret,
		})
	}
	switch porcupine.CheckOperationsTimeout(model, history, 60*time.Second) {
	case porcupine.Ok:
		fmt.Println("linearizable")
	case porcupine.Illegal:
		fmt.Println("not linearizable")
		os.Exit(1)
	default:
		fmt.Println("unknown (timed out)")
		os.Exit(3)
	}
}
