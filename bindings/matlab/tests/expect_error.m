function msg = expect_error(fn, id, pattern)
% Fails unless fn() raises an error with identifier id (and a message matching
% the regular expression pattern, if given). Returns the message.
try
  fn();
catch err
  if ~strcmp(err.identifier, id)
    error('expected error %s, got %s: %s', id, err.identifier, err.message);
  end
  if nargin > 2 && isempty(regexp(err.message, pattern, 'once'))
    error('error %s: message "%s" does not match "%s"', id, err.message, pattern);
  end
  msg = err.message;
  return;
end
error('expected error %s, but the call succeeded', id);
end
