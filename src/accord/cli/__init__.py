"""The `accord` command line: parse, call a service, render. No domain logic here."""
