# Example runtime script: sourced before each session, so exports reach claude.
export APP_ENV=development
echo "runtime: APP_ENV=$APP_ENV"
