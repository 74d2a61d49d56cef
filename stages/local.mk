# stages/: chain runtime (wire, links, stage loop); filled by the chain issue.
