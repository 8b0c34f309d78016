module github.com/hissuno/widgetauth

go 1.26.8

require (
	github.com/golang-jwt/jwt/v5 v5.3.1
	golang.org/x/net v0.62.0
)

require golang.org/x/text v0.43.0 // indirect
