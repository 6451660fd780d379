#!/bin/sh
# CGI demo in shell: a few facts about the request.
printf 'Content-Type: text/plain; charset=utf-8\r\n\r\n'
echo "Hello from sh"
echo "method: $REQUEST_METHOD"
echo "query:  $QUERY_STRING"
echo "path:   $PATH_INFO"
